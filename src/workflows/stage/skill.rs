//! Skills on disk: the `SKILL.md` format, one skill directory, and a directory of them.
//!
//! A skill lives in `<root>/<skill-id>/`:
//!
//! ```text
//! analyze-transcript/
//!   SKILL.md        the definition (required)
//!   prompt.txt      the prompt template (optional; else the whole SKILL.md is the template)
//!   templates/      files the skill carries (optional; any depth, UTF-8 text)
//! ```
//!
//! `SKILL.md` is Markdown:
//!
//! ```markdown
//! # Analyze Transcript
//!
//! Extracts key insights from user research transcripts.
//!
//! ## Inputs
//! - transcript: string (required) - Raw transcript text
//! - personas: string[] (optional) - Target personas
//!
//! ## Outputs
//! - summary: string - TL;DR summary
//!
//! ## Tags
//! research, analysis, transcript
//!
//! ## Version
//! 1.2.0
//!
//! ## Kind
//! prompt
//! ```
//!
//! The `# Title` is the skill's name and the first paragraph after it its description.
//! `## Inputs` and `## Outputs` are bullets `- name: type (required|optional) - description`,
//! where the type, the parenthesised part and the description may be left out (an input
//! without `(required)` is optional; outputs are never required) and the dash before the
//! description may be `-`, `–` or `—`. `## Tags` is a comma-separated line or bullets.
//! `## Version` (its first line) is the declared version; without it the version is derived
//! from the content ([`version_of`]). `## Kind` is `prompt` (the default) or `jury`. Other
//! sections are free text: they matter only as part of the prompt template when there is no
//! `prompt.txt`.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::{self, Read},
    path::{Path, PathBuf},
};

use serde_json::Value;

use super::template;
use crate::{
    domain::{Digest, SkillDefinition, SkillField, SkillId, SkillKind},
    error::{Error, Result},
};

/// The largest `SKILL.md` or `prompt.txt` read.
pub const MAX_DOCUMENT_BYTES: u64 = 256 * 1024;

/// The most bytes of a skill's `templates/`, all files together.
pub const MAX_TEMPLATES_BYTES: u64 = 1024 * 1024;

/// The most files a skill's `templates/` may hold.
pub const MAX_TEMPLATE_FILES: usize = 1000;

/// How deep `templates/` may nest (also what stops a loop of directory links).
const MAX_TEMPLATE_DEPTH: usize = 16;

/// The longest skill id.
const MAX_ID_CHARS: usize = 128;

/// The longest declared version.
const MAX_VERSION_CHARS: usize = 64;

/// The longest input or output name.
const MAX_FIELD_NAME_CHARS: usize = 128;

/// What a `SKILL.md` declares.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedSkill {
    /// The `# Title`.
    pub name: String,
    /// The first paragraph after the title, its lines joined with spaces.
    pub description: String,
    pub kind: SkillKind,
    pub inputs: Vec<SkillField>,
    pub outputs: Vec<SkillField>,
    pub tags: Vec<String>,
    /// The first line of `## Version`, if there is one.
    pub version: Option<String>,
}

/// A file of a skills directory that could not be loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillFileError {
    /// The file at fault (`/skills/bad/SKILL.md`), or the directory when its name is at fault.
    pub path: String,
    pub reason: String,
}

impl SkillFileError {
    fn new(path: &Path, reason: impl Into<String>) -> Self {
        Self {
            path: path.display().to_string(),
            reason: reason.into(),
        }
    }
}

/// A skill read from its directory.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedSkill {
    pub id: SkillId,
    /// The skill's directory.
    pub path: PathBuf,
    pub definition: SkillDefinition,
    /// The `## Version` of its `SKILL.md`, if it declares one.
    pub declared_version: Option<String>,
}

/// What a scan of a skills directory found: the skills that loaded (by id) and the files that
/// did not (by path).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanReport {
    pub skills: Vec<LoadedSkill>,
    pub errors: Vec<SkillFileError>,
}

/// Checks a skill id: 1 to 128 characters of `a-z`, `0-9`, `.`, `_` and `-`, starting with a
/// letter or a digit (so that it is a safe directory name). `field` names the request field.
pub fn validate_skill_id(field: &str, text: &str) -> Result<SkillId> {
    check_skill_id(text)
        .map(|()| SkillId::new(text))
        .map_err(|problem| Error::invalid(field, problem))
}

fn check_skill_id(text: &str) -> Result<(), String> {
    let rule = "a skill id is 1 to 128 characters of a-z, 0-9, `.`, `_` and `-`, starting with a letter or a digit";
    if text.is_empty() {
        return Err(format!("is required: {rule}"));
    }
    let mut chars = text.chars();
    let first_ok = chars
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first.is_ascii_digit());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if !first_ok || !rest_ok || text.chars().count() > MAX_ID_CHARS {
        return Err(format!(
            "`{}` is not a valid skill id: {rule}",
            shorten(text, 200)
        ));
    }
    Ok(())
}

/// The version and digest of a definition: the digest is the SHA-256 (hex) of its JSON, and
/// the version the declared one, else `sha256:` and the digest's first 12 hex digits.
pub fn version_of(definition: &SkillDefinition, declared: Option<&str>) -> (String, String) {
    let mut canonical = definition.clone();
    canonical.remote_metadata = canonical.remote_metadata.map(sorted);
    // Serializing plain data with string keys cannot fail; an empty document would still give
    // a digest, only a less useful one.
    let json = serde_json::to_vec(&canonical).unwrap_or_default();
    let digest = Digest::of(&json).as_str().to_owned();
    let version = match declared.map(str::trim) {
        Some(declared) if !declared.is_empty() => declared.to_owned(),
        _ => format!("sha256:{}", &digest[..12]),
    };
    (version, digest)
}

/// A JSON value with every object's keys in order, whatever order it was received in.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(object) => {
            let ordered: BTreeMap<String, Value> = object
                .into_iter()
                .map(|(key, value)| (key, sorted(value)))
                .collect();
            Value::Object(ordered.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// Checks a definition however it arrived (from disk or from a registry): a name, valid and
/// distinct input and output names, a well-formed prompt template, safe template paths, and
/// the size bounds.
pub fn validate_definition(definition: &SkillDefinition) -> Result<(), String> {
    if definition.name.trim().is_empty() {
        return Err("the skill has no name".to_owned());
    }
    check_fields("input", &definition.inputs)?;
    check_fields("output", &definition.outputs)?;
    if definition.prompt_template.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(format!(
            "the prompt template is {} bytes; at most {MAX_DOCUMENT_BYTES} are allowed",
            definition.prompt_template.len()
        ));
    }
    if definition.kind == SkillKind::Prompt {
        template::check(&definition.prompt_template)
            .map_err(|problem| format!("the prompt template: {problem}"))?;
    }
    if definition.templates.len() > MAX_TEMPLATE_FILES {
        return Err(format!(
            "the skill has {} templates; at most {MAX_TEMPLATE_FILES} are allowed",
            definition.templates.len()
        ));
    }
    let mut total: u64 = 0;
    for (path, content) in &definition.templates {
        check_template_path(path)?;
        total += content.len() as u64;
    }
    if total > MAX_TEMPLATES_BYTES {
        return Err(format!(
            "the templates hold {total} bytes; at most {MAX_TEMPLATES_BYTES} are allowed"
        ));
    }
    Ok(())
}

fn check_fields(what: &str, fields: &[SkillField]) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for field in fields {
        check_field_name(what, &field.name)?;
        if what == "input" && field.name.starts_with("params.") {
            return Err(format!(
                "the input `{}` starts with `params.`, which templates read as a param: rename it",
                field.name
            ));
        }
        if !seen.insert(field.name.as_str()) {
            return Err(format!("the {what} `{}` is declared twice", field.name));
        }
    }
    Ok(())
}

fn check_field_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("an {what} has no name"));
    }
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|first| first.is_ascii_alphanumeric() || first == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !first_ok || !rest_ok || name.chars().count() > MAX_FIELD_NAME_CHARS {
        return Err(format!(
            "`{}` is not a valid {what} name: use letters, digits, `_`, `.` and `-`, starting with a letter, a digit or `_`",
            shorten(name, 100)
        ));
    }
    Ok(())
}

/// A template's path: relative, `/`-separated, no empty, `.` or `..` segment, no backslash or
/// control character.
fn check_template_path(path: &str) -> Result<(), String> {
    let bad = path.is_empty()
        || path
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..")
        || path.chars().any(|c| c == '\\' || c.is_control());
    if bad {
        return Err(format!(
            "`{}` is not a valid template path: give a relative path of `/`-separated names",
            shorten(path, 200)
        ));
    }
    Ok(())
}

/// Parses a `SKILL.md` (see the module documentation). Errors name the line at fault.
pub fn parse_skill_md(text: &str) -> Result<ParsedSkill, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let mut parsed = ParsedSkill::default();

    // The title: the first line that is not blank.
    let Some(title_index) = lines.iter().position(|line| !line.trim().is_empty()) else {
        return Err(
            "the file is empty: a SKILL.md starts with `# Title`, the skill's name".to_owned(),
        );
    };
    let Some(title) = heading(lines[title_index], 1) else {
        return Err(format!(
            "line {}: a SKILL.md starts with `# Title`, the skill's name; found `{}`",
            title_index + 1,
            shorten(lines[title_index].trim(), 80)
        ));
    };
    if title.is_empty() {
        return Err(format!(
            "line {}: the `# Title` heading is empty: it is the skill's name",
            title_index + 1
        ));
    }
    parsed.name = title.to_owned();

    // The description: the first paragraph after the title, unless a heading comes first.
    let mut index = title_index + 1;
    while index < lines.len() && lines[index].trim().is_empty() {
        index += 1;
    }
    let mut paragraph = Vec::new();
    while index < lines.len()
        && !lines[index].trim().is_empty()
        && !is_heading(lines[index])
        && !is_fence(lines[index])
    {
        paragraph.push(lines[index].trim());
        index += 1;
    }
    parsed.description = paragraph.join(" ");

    // The sections.
    let mut seen = BTreeSet::new();
    let mut section = Section::Other;
    let mut fenced = false;
    let mut version_line = None;
    let mut kind_line = None;
    for (offset, line) in lines.iter().enumerate().skip(index) {
        let number = offset + 1;
        if is_fence(line) {
            fenced = !fenced;
        }
        if !fenced && is_heading(line) {
            section = match heading(line, 2).map(str::to_ascii_lowercase).as_deref() {
                Some("inputs") => Section::Inputs,
                Some("outputs") => Section::Outputs,
                Some("tags") => Section::Tags,
                Some("version") => Section::Version,
                Some("kind") => Section::Kind,
                _ => Section::Other,
            };
            if section != Section::Other && !seen.insert(section) {
                return Err(format!(
                    "line {number}: a second `{}` section: merge it into the first",
                    line.trim()
                ));
            }
            continue;
        }
        let trimmed = line.trim();
        match section {
            Section::Other => {}
            _ if trimmed.is_empty() => {}
            Section::Inputs | Section::Outputs => {
                let input = section == Section::Inputs;
                let fields = if input {
                    &mut parsed.inputs
                } else {
                    &mut parsed.outputs
                };
                if let (true, Some(last)) = (line.starts_with([' ', '\t']), fields.last_mut()) {
                    // A continuation (or a nested bullet) of the bullet above: more description.
                    let more = bullet(line).unwrap_or(trimmed);
                    if !last.description.is_empty() {
                        last.description.push(' ');
                    }
                    last.description.push_str(more);
                } else if let Some(item) = bullet(line) {
                    let field = parse_field(item, input)
                        .map_err(|problem| format!("line {number}: {problem}"))?;
                    if fields.iter().any(|known| known.name == field.name) {
                        let what = if input { "input" } else { "output" };
                        return Err(format!(
                            "line {number}: the {what} `{}` is declared twice",
                            field.name
                        ));
                    }
                    fields.push(field);
                } else {
                    let title = if input { "Inputs" } else { "Outputs" };
                    let example = if input {
                        "- name: type (required) - description"
                    } else {
                        "- name: type - description"
                    };
                    return Err(format!(
                        "line {number}: `{}` in the {title} section is not a bullet `{example}`",
                        shorten(trimmed, 80)
                    ));
                }
            }
            Section::Tags => {
                let items = bullet(line).unwrap_or(trimmed);
                for tag in items
                    .split(',')
                    .map(|tag| tag.trim().trim_matches('`').trim())
                    .filter(|tag| !tag.is_empty())
                {
                    if !parsed
                        .tags
                        .iter()
                        .any(|known| known.eq_ignore_ascii_case(tag))
                    {
                        parsed.tags.push(tag.to_owned());
                    }
                }
            }
            Section::Version => {
                if version_line.is_none() {
                    version_line = Some((number, trimmed));
                }
            }
            Section::Kind => {
                if kind_line.is_none() {
                    kind_line = Some((number, trimmed));
                }
            }
        }
    }

    if seen.contains(&Section::Version) {
        let Some((number, line)) = version_line else {
            return Err("the `## Version` section is empty: write the version on the line after it, or leave the section out".to_owned());
        };
        parsed.version =
            Some(parse_version(line).map_err(|problem| format!("line {number}: {problem}"))?);
    }
    if seen.contains(&Section::Kind) {
        let Some((number, line)) = kind_line else {
            return Err(
                "the `## Kind` section is empty: write `prompt` or `jury` on the line after it"
                    .to_owned(),
            );
        };
        let value = bullet(line).unwrap_or(line).trim_matches('`').trim();
        parsed.kind = match value.to_ascii_lowercase().as_str() {
            "prompt" => SkillKind::Prompt,
            "jury" => SkillKind::Jury,
            _ => {
                return Err(format!(
                    "line {number}: `{}` is not a skill kind: write `prompt` or `jury`",
                    shorten(value, 80)
                ))
            }
        };
    }
    Ok(parsed)
}

/// The sections of a `SKILL.md` that mean something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Section {
    Inputs,
    Outputs,
    Tags,
    Version,
    Kind,
    Other,
}

/// The text of an ATX heading of exactly `level` (`## Inputs` → `Inputs`), without a closing
/// sequence of `#`s (`## Tags ##` → `Tags`, but `## C#` → `C#`).
fn heading(line: &str, level: usize) -> Option<&str> {
    let trimmed = line.trim_end();
    let hashes = trimmed.len() - trimmed.trim_start_matches('#').len();
    if hashes != level {
        return None;
    }
    let rest = &trimmed[hashes..];
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return None;
    }
    let text = rest.trim();
    let unclosed = text.trim_end_matches('#');
    if unclosed.is_empty() {
        Some("")
    } else if unclosed.ends_with([' ', '\t']) {
        Some(unclosed.trim_end())
    } else {
        Some(text)
    }
}

/// Whether a line is an ATX heading of any level.
fn is_heading(line: &str) -> bool {
    (1..=6).any(|level| heading(line, level).is_some())
}

/// Whether a line opens or closes a fenced code block.
fn is_fence(line: &str) -> bool {
    let trimmed = line.trim_start();
    trimmed.starts_with("```") || trimmed.starts_with("~~~")
}

/// The text of a bullet (`- x`, `* x`, `+ x`), if the line is one.
fn bullet(line: &str) -> Option<&str> {
    let trimmed = line.trim();
    let rest = trimmed.strip_prefix(['-', '*', '+'])?;
    if rest.is_empty() {
        return Some("");
    }
    rest.starts_with([' ', '\t']).then(|| rest.trim())
}

/// The dashes accepted before a field's description.
const DASHES: [char; 3] = ['-', '–', '—'];

/// One bullet of `## Inputs` or `## Outputs`: `name: type (required|optional) - description`.
fn parse_field(item: &str, input: bool) -> Result<SkillField, String> {
    let what = if input { "input" } else { "output" };
    let example = if input {
        "- name: type (required) - description"
    } else {
        "- name: type - description"
    };
    let Some((name, rest)) = item.split_once(':') else {
        return Err(format!(
            "the bullet `{}` is not `{example}`: it has no `name:`",
            shorten(item, 80)
        ));
    };
    let name = name.trim().trim_matches('`').trim();
    if name.is_empty() {
        return Err(format!(
            "the bullet `{}` has no {what} name before its `:`",
            shorten(item, 80)
        ));
    }
    check_field_name(what, name)?;
    if input && name.starts_with("params.") {
        return Err(format!(
            "the input `{name}` starts with `params.`, which templates read as a param: rename it"
        ));
    }
    let (head, description) = split_description(rest.trim());
    let (type_name, flag) = match head.find('(') {
        Some(open) => {
            let Some(close) = head[open..].find(')').map(|close| open + close) else {
                return Err(format!(
                    "`{}` opens a `(` it never closes: write (required) or (optional)",
                    shorten(head, 80)
                ));
            };
            let after = head[close + 1..].trim();
            if !after.is_empty() {
                return Err(format!(
                    "`{}` has text after its `(...)`; put the description after a dash: `{example}`",
                    shorten(head, 80)
                ));
            }
            (head[..open].trim(), Some(head[open + 1..close].trim()))
        }
        None => (head.trim(), None),
    };
    let required = match flag.map(str::to_ascii_lowercase).as_deref() {
        None => false,
        Some("required") => input,
        Some("optional") => false,
        Some(other) => {
            return Err(format!(
                "`({other})` of the {what} `{name}` should be (required) or (optional)"
            ));
        }
    };
    Ok(SkillField {
        name: name.to_owned(),
        type_name: type_name.trim_matches('`').trim().to_owned(),
        required,
        description: description.to_owned(),
    })
}

/// Splits `type (flag) - description` at the first dash that stands alone (a dash at the start,
/// or one with white space before it and white space or nothing after it).
fn split_description(rest: &str) -> (&str, &str) {
    let mut previous: Option<char> = None;
    for (at, c) in rest.char_indices() {
        if DASHES.contains(&c) && previous.is_none_or(char::is_whitespace) {
            let after = &rest[at + c.len_utf8()..];
            if after.is_empty() || after.starts_with(char::is_whitespace) {
                return (rest[..at].trim(), after.trim());
            }
        }
        previous = Some(c);
    }
    (rest, "")
}

/// The first line of `## Version`: one word, not `sha256:…` (that names derived versions).
fn parse_version(line: &str) -> Result<String, String> {
    let version = bullet(line).unwrap_or(line).trim().trim_matches('`').trim();
    if version.is_empty() {
        return Err("the version is empty".to_owned());
    }
    if version.chars().any(|c| c.is_whitespace() || c.is_control())
        || version.chars().count() > MAX_VERSION_CHARS
    {
        return Err(format!("`{}` is not a version: write one word of at most {MAX_VERSION_CHARS} characters, like 1.2.0", shorten(version, 80)));
    }
    if version.starts_with("sha256:") {
        return Err(format!("`{version}` is not a version: `sha256:` names the versions derived from a skill's content"));
    }
    Ok(version.to_owned())
}

/// Loads the skill in `dir` (see the module documentation): its id (the directory's name), its
/// definition, and the version its `SKILL.md` declares. The error names the file at fault.
pub fn load_skill_dir(dir: &Path) -> Result<(SkillId, SkillDefinition, Option<String>), String> {
    load(dir)
        .map(|loaded| (loaded.id, loaded.definition, loaded.declared_version))
        .map_err(|error| format!("{}: {}", error.path, error.reason))
}

fn load(dir: &Path) -> Result<LoadedSkill, SkillFileError> {
    let name = dir
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default();
    check_skill_id(name).map_err(|problem| {
        SkillFileError::new(
            dir,
            format!("the directory's name is the skill's id, and {problem}"),
        )
    })?;
    let id = SkillId::new(name);

    let skill_md = dir.join("SKILL.md");
    let Some(document) = read_text(&skill_md, MAX_DOCUMENT_BYTES)? else {
        return Err(SkillFileError::new(
            &skill_md,
            "is missing: every skill directory holds a SKILL.md that defines the skill",
        ));
    };
    let parsed =
        parse_skill_md(&document).map_err(|problem| SkillFileError::new(&skill_md, problem))?;

    let prompt_txt = dir.join("prompt.txt");
    let (prompt_template, template_file) = match read_text(&prompt_txt, MAX_DOCUMENT_BYTES)? {
        Some(prompt) => (prompt, prompt_txt),
        None => (document, skill_md.clone()),
    };
    if parsed.kind == SkillKind::Prompt {
        template::check(&prompt_template).map_err(|problem| {
            SkillFileError::new(&template_file, format!("as the prompt template: {problem}"))
        })?;
    }

    let templates = read_templates(&dir.join("templates"))?;
    let definition = SkillDefinition {
        name: parsed.name,
        description: parsed.description,
        kind: parsed.kind,
        inputs: parsed.inputs,
        outputs: parsed.outputs,
        tags: parsed.tags,
        prompt_template,
        templates,
        remote_metadata: None,
    };
    validate_definition(&definition).map_err(|problem| SkillFileError::new(&skill_md, problem))?;
    Ok(LoadedSkill {
        id,
        path: dir.to_path_buf(),
        definition,
        declared_version: parsed.version,
    })
}

/// A file's text, `None` when it does not exist; an error when it is not a file, larger than
/// `limit` bytes, unreadable or not UTF-8.
fn read_text(path: &Path, limit: u64) -> Result<Option<String>, SkillFileError> {
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(SkillFileError::new(path, format!("cannot be read: {err}"))),
    };
    if !metadata.is_file() {
        return Err(SkillFileError::new(path, "is not a file"));
    }
    if metadata.len() > limit {
        return Err(SkillFileError::new(
            path,
            format!("is {} bytes; at most {limit} are allowed", metadata.len()),
        ));
    }
    let file = fs::File::open(path)
        .map_err(|err| SkillFileError::new(path, format!("cannot be read: {err}")))?;
    let mut bytes = Vec::new();
    // Read one byte past the limit, in case the file grew since its size was read.
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|err| SkillFileError::new(path, format!("cannot be read: {err}")))?;
    if bytes.len() as u64 > limit {
        return Err(SkillFileError::new(
            path,
            format!("is larger than {limit} bytes, the most allowed"),
        ));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| SkillFileError::new(path, "is not UTF-8 text"))
}

/// Every file under `templates/` by its path relative to it, within the bounds. Hidden files
/// and directories (`.DS_Store`, `.git`) are skipped.
fn read_templates(root: &Path) -> Result<BTreeMap<String, String>, SkillFileError> {
    let mut templates = BTreeMap::new();
    match fs::metadata(root) {
        Ok(metadata) if metadata.is_dir() => {}
        Ok(_) => {
            return Err(SkillFileError::new(
                root,
                "is not a directory: templates/ holds the files a skill carries",
            ))
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(templates),
        Err(err) => return Err(SkillFileError::new(root, format!("cannot be read: {err}"))),
    }
    let mut total = 0;
    collect_templates(root, "", 0, &mut total, &mut templates)?;
    Ok(templates)
}

fn collect_templates(
    dir: &Path,
    prefix: &str,
    depth: usize,
    total: &mut u64,
    templates: &mut BTreeMap<String, String>,
) -> Result<(), SkillFileError> {
    if depth > MAX_TEMPLATE_DEPTH {
        return Err(SkillFileError::new(
            dir,
            format!("nests deeper than {MAX_TEMPLATE_DEPTH} directories under templates/"),
        ));
    }
    let entries = fs::read_dir(dir)
        .map_err(|err| SkillFileError::new(dir, format!("cannot be read: {err}")))?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|err| SkillFileError::new(dir, format!("cannot be read: {err}")))?;
        paths.push(entry.path());
    }
    paths.sort();
    for path in paths {
        let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
            return Err(SkillFileError::new(&path, "has a name that is not UTF-8"));
        };
        if name.starts_with('.') {
            continue;
        }
        let relative = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}/{name}")
        };
        check_template_path(&relative).map_err(|problem| SkillFileError::new(&path, problem))?;
        let metadata = fs::metadata(&path)
            .map_err(|err| SkillFileError::new(&path, format!("cannot be read: {err}")))?;
        if metadata.is_dir() {
            collect_templates(&path, &relative, depth + 1, total, templates)?;
            continue;
        }
        if templates.len() >= MAX_TEMPLATE_FILES {
            return Err(SkillFileError::new(
                &path,
                format!("is one file too many: templates/ may hold at most {MAX_TEMPLATE_FILES}"),
            ));
        }
        let remaining = MAX_TEMPLATES_BYTES.saturating_sub(*total);
        let text = match read_text(&path, remaining) {
            Ok(Some(text)) => text,
            Ok(None) => continue,
            Err(_) if metadata.is_file() && metadata.len() > remaining => {
                return Err(SkillFileError::new(
                    &path,
                    format!("would take templates/ past {MAX_TEMPLATES_BYTES} bytes, the most a skill's templates may hold together"),
                ));
            }
            Err(error) => return Err(error),
        };
        *total += text.len() as u64;
        templates.insert(relative, text);
    }
    Ok(())
}

/// Loads every skill under `root`: each immediate subdirectory not starting with `.` is one.
/// A skill that does not load is reported by the file at fault, and the others still load.
/// Fails only when `root` is not a readable directory.
pub fn scan_skills(root: &Path) -> Result<ScanReport> {
    let shown = root.display();
    let metadata = fs::metadata(root).map_err(|err| match err.kind() {
        io::ErrorKind::NotFound => Error::invalid(
            "path",
            format!("`{shown}` does not exist: give the directory holding <skill-id>/SKILL.md"),
        ),
        _ => Error::invalid("path", format!("`{shown}` cannot be read: {err}")),
    })?;
    if !metadata.is_dir() {
        return Err(Error::invalid(
            "path",
            format!("`{shown}` is not a directory: give the directory holding <skill-id>/SKILL.md"),
        ));
    }
    let entries = fs::read_dir(root)
        .map_err(|err| Error::invalid("path", format!("`{shown}` cannot be read: {err}")))?;
    let mut report = ScanReport::default();
    for entry in entries {
        let entry = entry
            .map_err(|err| Error::invalid("path", format!("`{shown}` cannot be read: {err}")))?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        // Follows links: a skill directory may be a link to one kept elsewhere.
        match fs::metadata(&path) {
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => continue,
            Err(err) => {
                report
                    .errors
                    .push(SkillFileError::new(&path, format!("cannot be read: {err}")));
                continue;
            }
        }
        match load(&path) {
            Ok(loaded) => report.skills.push(loaded),
            Err(error) => report.errors.push(error),
        }
    }
    report.skills.sort_by(|a, b| a.id.cmp(&b.id));
    report.errors.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(report)
}

/// `text` cut to `max` characters, with `…` when cut.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "# Analyze Transcript\n\nExtracts key insights from user research transcripts.\n\n## Inputs\n- transcript: string (required) - Raw transcript text\n- personas: string[] (optional) - Target personas\n\n## Outputs\n- summary: string - TL;DR summary\n- problems: Problem[] - User problems with quotes\n- requests: Request[] - Feature requests\n\n## Tags\nresearch, analysis, transcript\n";

    fn field(name: &str, type_name: &str, required: bool, description: &str) -> SkillField {
        SkillField {
            name: name.into(),
            type_name: type_name.into(),
            required,
            description: description.into(),
        }
    }

    fn write(path: &Path, text: &str) {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(path, text).unwrap();
    }

    #[test]
    fn parses_the_seed_example() {
        let parsed = parse_skill_md(SEED).unwrap();
        assert_eq!(parsed.name, "Analyze Transcript");
        assert_eq!(
            parsed.description,
            "Extracts key insights from user research transcripts."
        );
        assert_eq!(parsed.kind, SkillKind::Prompt);
        assert_eq!(
            parsed.inputs,
            [
                field("transcript", "string", true, "Raw transcript text"),
                field("personas", "string[]", false, "Target personas")
            ]
        );
        assert_eq!(
            parsed.outputs,
            [
                field("summary", "string", false, "TL;DR summary"),
                field("problems", "Problem[]", false, "User problems with quotes"),
                field("requests", "Request[]", false, "Feature requests"),
            ]
        );
        assert_eq!(parsed.tags, ["research", "analysis", "transcript"]);
        assert_eq!(parsed.version, None);
    }

    #[test]
    fn parses_optional_parts_dashes_version_kind_and_bulleted_tags() {
        let text = "\n# Score It  \n\nA panel scores\na document.\n\nMore prose, not the description.\n\n## About\n- not: a field\n\n\
                    ## inputs\n* `document`: string (Required) – what is scored\n  and why\n- bare:\n- typed: int\n- flagged: (optional)\n\
                    - dashed: — only a description\n- hyphen-type: pre-release - keeps the hyphenated type\n\n\
                    ## Outputs\n- verdict: json (required) — scores\n\n## Tags\n- validation, jury\n- Jury\n- `panel`\n\n\
                    ## Version\n`1.2.0`\nignored\n\n## Kind\nJury\n";
        let parsed = parse_skill_md(text).unwrap();
        assert_eq!(parsed.name, "Score It");
        assert_eq!(parsed.description, "A panel scores a document.");
        assert_eq!(parsed.kind, SkillKind::Jury);
        assert_eq!(parsed.version.as_deref(), Some("1.2.0"));
        assert_eq!(
            parsed.inputs,
            [
                field("document", "string", true, "what is scored and why"),
                field("bare", "", false, ""),
                field("typed", "int", false, ""),
                field("flagged", "", false, ""),
                field("dashed", "", false, "only a description"),
                field(
                    "hyphen-type",
                    "pre-release",
                    false,
                    "keeps the hyphenated type"
                ),
            ]
        );
        assert_eq!(
            parsed.outputs,
            [field("verdict", "json", false, "scores")],
            "outputs are never required"
        );
        assert_eq!(
            parsed.tags,
            ["validation", "jury", "panel"],
            "tags are trimmed and deduplicated"
        );
    }

    #[test]
    fn headings_inside_code_blocks_are_not_sections() {
        let text = "# T\n\nD.\n\n## Example\n```\n## Inputs\n- not a field\n```\n\n## Inputs\n- real: string\n";
        let parsed = parse_skill_md(text).unwrap();
        assert_eq!(parsed.inputs, [field("real", "string", false, "")]);
    }

    #[test]
    fn a_title_followed_by_a_section_has_no_description() {
        let parsed = parse_skill_md("# Only A Name\n## Tags\na,b\n").unwrap();
        assert_eq!((parsed.description.as_str(), parsed.tags.len()), ("", 2));
    }

    #[test]
    fn malformed_documents_say_what_is_wrong_and_where() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("   \n\n", "empty"),
            (
                "No title here.\n",
                "line 1: a SKILL.md starts with `# Title`",
            ),
            ("\n## Inputs\n", "line 2: a SKILL.md starts with `# Title`"),
            ("#\n", "line 1: the `# Title` heading is empty"),
            ("#    \nD\n", "line 1: the `# Title` heading is empty"),
            (
                "# T\n\n## Inputs\n- no colon here\n",
                "line 4: the bullet `no colon here` is not `- name: type (required) - description`",
            ),
            (
                "# T\n\n## Inputs\n- : string\n",
                "line 4: the bullet `: string` has no input name",
            ),
            (
                "# T\n\n## Inputs\n- a: string\n- b: string\n- a: int\n",
                "line 6: the input `a` is declared twice",
            ),
            (
                "# T\n\n## Outputs\n- a: x\n- a: y\n",
                "line 5: the output `a` is declared twice",
            ),
            (
                "# T\n\n## Inputs\nsome prose\n",
                "line 4: `some prose` in the Inputs section is not a bullet",
            ),
            (
                "# T\n\n## Inputs\n- bad name: string\n",
                "line 4: `bad name` is not a valid input name",
            ),
            (
                "# T\n\n## Inputs\n- params.x: string\n",
                "line 4: the input `params.x` starts with `params.`",
            ),
            (
                "# T\n\n## Inputs\n- a: string (maybe) - x\n",
                "line 4: `(maybe)` of the input `a` should be (required) or (optional)",
            ),
            (
                "# T\n\n## Inputs\n- a: string (required - x\n",
                "line 4: `string (required` opens a `(`",
            ),
            (
                "# T\n\n## Inputs\n- a: string (required) extra\n",
                "line 4: `string (required) extra` has text after",
            ),
            (
                "# T\n\n## Kind\nshell\n",
                "line 4: `shell` is not a skill kind",
            ),
            ("# T\n\n## Kind\n\n", "the `## Kind` section is empty"),
            ("# T\n\n## Version\n", "the `## Version` section is empty"),
            (
                "# T\n\n## Version\n1.0 beta\n",
                "line 4: `1.0 beta` is not a version",
            ),
            (
                "# T\n\n## Version\nsha256:abc\n",
                "line 4: `sha256:abc` is not a version",
            ),
            (
                "# T\n\n## Tags\na\n\n## Tags\nb\n",
                "line 6: a second `## Tags` section",
            ),
        ];
        for (text, expected) in cases {
            let error = parse_skill_md(text).unwrap_err();
            assert!(
                error.contains(expected),
                "{text:?}: `{error}` should say `{expected}`"
            );
        }
    }

    #[test]
    fn skill_ids_are_checked() {
        for good in [
            "a",
            "analyze-transcript",
            "smp_abc123",
            "v1.2",
            "0x",
            &"a".repeat(128),
        ] {
            assert_eq!(validate_skill_id("id", good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "Upper",
            "-lead",
            ".hidden",
            "../etc",
            "a/b",
            "a b",
            "é",
            &"a".repeat(129),
        ] {
            match validate_skill_id("skill_id", bad) {
                Err(Error::InvalidArgument(violations)) => {
                    assert_eq!(violations[0].field, "skill_id", "{bad:?}")
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn versions_are_declared_or_derived_from_the_content() {
        let definition = SkillDefinition {
            name: "A".into(),
            prompt_template: "x".into(),
            ..Default::default()
        };
        let (version, digest) = version_of(&definition, None);
        assert_eq!(digest.len(), 64);
        assert_eq!(version, format!("sha256:{}", &digest[..12]));
        assert_eq!(
            version_of(&definition, Some("2.0.0")),
            ("2.0.0".to_owned(), digest.clone())
        );
        assert_eq!(
            version_of(&definition, Some("  ")).0,
            version,
            "a blank declaration is none"
        );

        let changed = SkillDefinition {
            prompt_template: "y".into(),
            ..definition.clone()
        };
        assert_ne!(version_of(&changed, None).1, digest);

        let ordered = |metadata: Value| SkillDefinition {
            remote_metadata: Some(metadata),
            ..definition.clone()
        };
        let one = ordered(serde_json::json!({"a": 1, "b": {"c": 2, "d": 3}}));
        let other = ordered(serde_json::json!({"b": {"d": 3, "c": 2}, "a": 1}));
        assert_eq!(
            version_of(&one, None),
            version_of(&other, None),
            "key order does not change the digest"
        );
    }

    #[test]
    fn loads_a_skill_directory_with_prompt_and_templates() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("generate-prd");
        write(&dir.join("SKILL.md"), "# Generate PRD\n\nWrites a PRD.\n\n## Inputs\n- research: string (required) - findings\n\n## Version\n1.0.0\n");
        write(
            &dir.join("prompt.txt"),
            "Write a PRD for {{params.audience}} from {{ research }}\n",
        );
        write(&dir.join("templates/prd-template.md"), "# PRD\n");
        write(&dir.join("templates/sections/problem.md"), "## Problem\n");
        write(&dir.join("templates/.DS_Store"), "ignored");
        let (id, definition, declared) = load_skill_dir(&dir).unwrap();
        assert_eq!(id.as_str(), "generate-prd");
        assert_eq!(declared.as_deref(), Some("1.0.0"));
        assert_eq!(definition.name, "Generate PRD");
        assert_eq!(
            definition.prompt_template,
            "Write a PRD for {{params.audience}} from {{ research }}\n"
        );
        let templates: Vec<(&str, &str)> = definition
            .templates
            .iter()
            .map(|(path, text)| (path.as_str(), text.as_str()))
            .collect();
        assert_eq!(
            templates,
            [
                ("prd-template.md", "# PRD\n"),
                ("sections/problem.md", "## Problem\n")
            ]
        );
        assert_eq!(definition.remote_metadata, None);
    }

    #[test]
    fn without_prompt_txt_the_whole_document_is_the_template() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("summarize");
        let document = "# Summarize\n\nSummarizes.\n\n## Inputs\n- text: string (required)\n\n## Instructions\nSummarize {{text}}.\n";
        write(&dir.join("SKILL.md"), document);
        let (_, definition, declared) = load_skill_dir(&dir).unwrap();
        assert_eq!(definition.prompt_template, document);
        assert_eq!(declared, None);
        assert!(definition.templates.is_empty());
    }

    #[test]
    fn bad_skill_directories_name_the_file_at_fault() {
        let root = tempfile::tempdir().unwrap();
        let base = root.path();

        let missing = base.join("missing");
        fs::create_dir_all(&missing).unwrap();
        let error = load_skill_dir(&missing).unwrap_err();
        assert!(
            error.contains("missing/SKILL.md") && error.contains("is missing"),
            "{error}"
        );

        let bad_name = base.join("Bad Name");
        write(&bad_name.join("SKILL.md"), "# T\n");
        let error = load_skill_dir(&bad_name).unwrap_err();
        assert!(
            error.contains("Bad Name") && error.contains("skill id"),
            "{error}"
        );

        let big = base.join("big");
        write(
            &big.join("SKILL.md"),
            &format!("# T\n\n{}\n", "x".repeat(MAX_DOCUMENT_BYTES as usize)),
        );
        let error = load_skill_dir(&big).unwrap_err();
        assert!(
            error.contains("big/SKILL.md") && error.contains("at most 262144"),
            "{error}"
        );

        let big_prompt = base.join("big-prompt");
        write(&big_prompt.join("SKILL.md"), "# T\n");
        write(
            &big_prompt.join("prompt.txt"),
            &"x".repeat(MAX_DOCUMENT_BYTES as usize + 1),
        );
        let error = load_skill_dir(&big_prompt).unwrap_err();
        assert!(error.contains("big-prompt/prompt.txt"), "{error}");

        let big_templates = base.join("big-templates");
        write(&big_templates.join("SKILL.md"), "# T\n");
        write(
            &big_templates.join("templates/a.md"),
            &"x".repeat(600 * 1024),
        );
        write(
            &big_templates.join("templates/b.md"),
            &"x".repeat(600 * 1024),
        );
        let error = load_skill_dir(&big_templates).unwrap_err();
        assert!(
            error.contains("templates/b.md") && error.contains("1048576"),
            "{error}"
        );

        let binary = base.join("binary");
        write(&binary.join("SKILL.md"), "# T\n");
        fs::create_dir_all(binary.join("templates")).unwrap();
        fs::write(binary.join("templates/logo.png"), [0x89, 0x50, 0xff, 0xfe]).unwrap();
        let error = load_skill_dir(&binary).unwrap_err();
        assert!(
            error.contains("templates/logo.png") && error.contains("UTF-8"),
            "{error}"
        );

        let bad_template = base.join("bad-template");
        write(&bad_template.join("SKILL.md"), "# T\n");
        write(
            &bad_template.join("prompt.txt"),
            "line one\nthen {{ unclosed\n",
        );
        let error = load_skill_dir(&bad_template).unwrap_err();
        assert!(
            error.contains("bad-template/prompt.txt") && error.contains("line 2"),
            "{error}"
        );

        let malformed = base.join("malformed");
        write(&malformed.join("SKILL.md"), "# T\n\n## Kind\nshell\n");
        let error = load_skill_dir(&malformed).unwrap_err();
        assert!(error.contains("malformed/SKILL.md: line 4"), "{error}");
    }

    #[test]
    fn a_jury_template_is_not_checked_as_a_prompt() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("jury");
        write(
            &dir.join("SKILL.md"),
            "# Jury\n\nScores.\n\n## Kind\njury\n\n## Notes\nUses {{ handlebars like }} text.\n",
        );
        let (_, definition, _) = load_skill_dir(&dir).unwrap();
        assert_eq!(definition.kind, SkillKind::Jury);
    }

    #[test]
    fn scans_a_directory_reporting_bad_skills_per_file() {
        let root = tempfile::tempdir().unwrap();
        let base = root.path();
        write(&base.join("zeta/SKILL.md"), "# Zeta\n\nLast.\n");
        write(
            &base.join("alpha/SKILL.md"),
            "# Alpha\n\nFirst.\n\n## Tags\na\n",
        );
        write(
            &base.join("broken/SKILL.md"),
            "No title here, just words.\n",
        );
        write(
            &base.join("no-definition/prompt.txt"),
            "A prompt without its SKILL.md\n",
        );
        write(&base.join(".hidden/SKILL.md"), "not a title\n");
        write(&base.join("README.md"), "files at the top are not skills\n");
        let report = scan_skills(base).unwrap();
        let ids: Vec<&str> = report
            .skills
            .iter()
            .map(|skill| skill.id.as_str())
            .collect();
        assert_eq!(ids, ["alpha", "zeta"]);
        assert_eq!(report.skills[0].path, base.join("alpha"));
        assert_eq!(report.skills[0].definition.tags, ["a"]);
        let paths: Vec<&str> = report
            .errors
            .iter()
            .map(|error| error.path.as_str())
            .collect();
        assert_eq!(
            paths,
            [
                base.join("broken/SKILL.md").display().to_string(),
                base.join("no-definition/SKILL.md").display().to_string()
            ]
        );
        assert!(
            report.errors[0].reason.contains("line 1"),
            "{:?}",
            report.errors[0]
        );
        assert!(
            report.errors[1].reason.contains("is missing"),
            "{:?}",
            report.errors[1]
        );
    }

    #[test]
    fn scanning_needs_a_directory() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("file");
        fs::write(&file, "x").unwrap();
        for path in [root.path().join("nope"), file] {
            match scan_skills(&path) {
                Err(Error::InvalidArgument(violations)) => assert_eq!(violations[0].field, "path"),
                other => panic!("{path:?}: {other:?}"),
            }
        }
        assert_eq!(
            scan_skills(root.path()).unwrap(),
            ScanReport {
                skills: Vec::new(),
                errors: Vec::new()
            },
            "an empty directory has no skills"
        );
    }

    #[test]
    fn definitions_from_anywhere_are_validated() {
        let good = SkillDefinition {
            name: "A".into(),
            prompt_template: "{{x}}".into(),
            ..Default::default()
        };
        assert_eq!(validate_definition(&good), Ok(()));
        let with = |edit: &dyn Fn(&mut SkillDefinition)| {
            let mut definition = good.clone();
            edit(&mut definition);
            validate_definition(&definition).unwrap_err()
        };
        assert!(with(&|d| d.name = " ".into()).contains("no name"));
        assert!(
            with(&|d| d.inputs = vec![field("a", "", true, ""), field("a", "", false, "")])
                .contains("declared twice")
        );
        assert!(with(&|d| d.outputs = vec![field("", "", false, "")]).contains("has no name"));
        assert!(with(&|d| d.prompt_template = "{{ a b }}".into()).contains("the prompt template"));
        for path in ["../escape", "/abs", "a//b", "a\\b", "./a", ""] {
            let error = with(&|d| d.templates = BTreeMap::from([(path.to_owned(), String::new())]));
            assert!(
                error.contains("not a valid template path"),
                "{path:?}: {error}"
            );
        }
        assert!(with(&|d| d.templates =
            BTreeMap::from([("a".to_owned(), "x".repeat(MAX_TEMPLATES_BYTES as usize + 1))]))
        .contains("bytes"));
    }

    #[test]
    fn headings_are_recognised_by_level() {
        assert_eq!(heading("# Title", 1), Some("Title"));
        assert_eq!(heading("## Tags ##", 2), Some("Tags"));
        assert_eq!(heading("## C#", 2), Some("C#"));
        assert_eq!(heading("##", 2), Some(""));
        assert_eq!(heading("#hashtag", 1), None);
        assert_eq!(heading("### Deeper", 2), None);
        assert_eq!(heading(" # indented", 1), None);
    }
}
