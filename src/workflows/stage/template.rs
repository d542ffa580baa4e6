//! Prompt templates: `{{name}}` is replaced by the step's input `name` and `{{params.key}}` by
//! the step's param `key` (a string as it is, any other JSON value as compact JSON). White
//! space inside the braces is allowed (`{{ name }}`). `\{{` writes a literal `{{`.
//!
//! A placeholder's name is letters, digits, `_`, `.` and `-`, starting with a letter, a digit
//! or `_`. Any other `{{` (one never closed, or `{{#each}}`) is an error that names its line,
//! and so is a placeholder that no input or param gives: a template never reaches a model
//! with a hole in it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// What `params.` starts in a placeholder that reads a param.
const PARAMS_PREFIX: &str = "params.";

/// A template cut into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

/// The template's pieces, and the first syntax error if there is one (the `{{` at fault is
/// then kept as text so that the rest can still be read).
fn pieces(template: &str) -> (Vec<Piece<'_>>, Option<String>) {
    let mut pieces = Vec::new();
    let mut error = None;
    let mut text_start = 0;
    let mut at = 0;
    while at < template.len() {
        let rest = &template[at..];
        if rest.starts_with("\\{{") {
            push_text(&mut pieces, &template[text_start..at]);
            pieces.push(Piece::Text("{{"));
            at += 3;
            text_start = at;
            continue;
        }
        if rest.starts_with("{{") {
            let inner_start = at + 2;
            let problem = match template[inner_start..].find("}}") {
                Some(length) => {
                    let name = template[inner_start..inner_start + length].trim();
                    if is_placeholder_name(name) {
                        push_text(&mut pieces, &template[text_start..at]);
                        pieces.push(Piece::Placeholder(name));
                        at = inner_start + length + 2;
                        text_start = at;
                        continue;
                    }
                    format!(
                        "`{{{{{}}}}}` is not a placeholder: write {{{{input}}}} or {{{{params.key}}}}, or \\{{{{ for a literal {{{{",
                        shorten(&template[inner_start..inner_start + length], 60)
                    )
                }
                None => "a `{{` is never closed with `}}`: write \\{{ for a literal {{".to_owned(),
            };
            if error.is_none() {
                error = Some(format!("line {}: {problem}", line_of(template, at)));
            }
            at += 2;
            continue;
        }
        at += rest.chars().next().map_or(1, char::len_utf8);
    }
    push_text(&mut pieces, &template[text_start..]);
    (pieces, error)
}

fn push_text<'a>(pieces: &mut Vec<Piece<'a>>, text: &'a str) {
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
}

/// Whether the text between `{{` and `}}` (trimmed) names an input or a param.
fn is_placeholder_name(name: &str) -> bool {
    let name = name.strip_prefix(PARAMS_PREFIX).unwrap_or(name);
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphanumeric() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, at: usize) -> usize {
    text[..at].matches('\n').count() + 1
}

fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Checks a template's syntax (every `{{` opens a placeholder or is escaped), without values.
pub fn check(template: &str) -> Result<(), String> {
    match pieces(template).1 {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// The distinct placeholders of a template, in the order they first appear, as written inside
/// the braces without white space: `transcript`, `params.audience`. Malformed `{{` are left
/// out (see [`check`]).
pub fn placeholders(template: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    pieces(template)
        .0
        .into_iter()
        .filter_map(|piece| match piece {
            Piece::Placeholder(name) if seen.insert(name) => Some(name.to_owned()),
            _ => None,
        })
        .collect()
}

/// Renders a template with a step's inputs and params. Fails on a syntax error, or naming every
/// placeholder that no input or param gives.
pub fn render(
    template: &str,
    inputs: &BTreeMap<String, String>,
    params: &Map<String, Value>,
) -> Result<String, String> {
    let (pieces, error) = pieces(template);
    if let Some(error) = error {
        return Err(error);
    }
    let mut rendered = String::with_capacity(template.len());
    let mut missing: Vec<&str> = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Text(text) => rendered.push_str(text),
            Piece::Placeholder(name) => {
                let value = match name.strip_prefix(PARAMS_PREFIX) {
                    Some(key) => params.get(key).map(|value| match value {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    }),
                    None => inputs.get(name).cloned(),
                };
                match value {
                    Some(value) => rendered.push_str(&value),
                    None if !missing.contains(&name) => missing.push(name),
                    None => {}
                }
            }
        }
    }
    if missing.is_empty() {
        return Ok(rendered);
    }
    let named: Vec<String> = missing
        .iter()
        .map(|name| format!("{{{{{name}}}}}"))
        .collect();
    let (uses, which) = match named.as_slice() {
        [one] => (one.clone(), "which no input or param gives"),
        [first @ .., last] => (
            format!("{} and {last}", first.join(", ")),
            "which no input or param give",
        ),
        [] => (String::new(), ""),
    };
    let given_inputs: Vec<&str> = inputs.keys().map(String::as_str).collect();
    let given_params: Vec<&str> = params.keys().map(String::as_str).collect();
    let list = |names: &[&str]| {
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    };
    Err(format!(
        "the template uses {uses}, {which} (inputs: {}; params: {})",
        list(&given_inputs),
        list(&given_params)
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn inputs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }

    fn params(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("params are an object"),
        }
    }

    #[test]
    fn replaces_inputs_and_params() {
        let template = "Write for {{params.audience}} from {{ research }} ({{research}}) in {{params.count}} parts, {{params.tone}}: {{params.extra}}";
        let rendered = render(
            template,
            &inputs(&[("research", "notes")]),
            &params(json!({"audience": "engineers", "count": 3, "tone": null, "extra": {"a": [1, "b"]}})),
        )
        .unwrap();
        assert_eq!(
            rendered,
            "Write for engineers from notes (notes) in 3 parts, null: {\"a\":[1,\"b\"]}"
        );
    }

    #[test]
    fn text_without_placeholders_is_unchanged() {
        for text in [
            "",
            "plain",
            "a { b } c",
            "{ \"json\": {\"nested\": 1} }",
            "closing }} alone",
            "ünïcödé {x}",
        ] {
            assert_eq!(
                render(text, &BTreeMap::new(), &Map::new()).as_deref(),
                Ok(text)
            );
            assert!(placeholders(text).is_empty());
        }
    }

    #[test]
    fn escaped_braces_are_literal() {
        let rendered = render(
            "\\{{name}} is {{name}}, \\{{ not closed",
            &inputs(&[("name", "x")]),
            &Map::new(),
        )
        .unwrap();
        assert_eq!(rendered, "{{name}} is x, {{ not closed");
        assert_eq!(placeholders("\\{{a}} {{b}}"), ["b"]);
    }

    #[test]
    fn values_are_not_rendered_again() {
        let rendered = render("{{a}}", &inputs(&[("a", "{{b}}")]), &Map::new()).unwrap();
        assert_eq!(rendered, "{{b}}");
    }

    #[test]
    fn unknown_placeholders_are_named() {
        let error = render(
            "Hi {{x}}",
            &inputs(&[("name", "n")]),
            &params(json!({"p": 1})),
        )
        .unwrap_err();
        assert_eq!(
            error,
            "the template uses {{x}}, which no input or param gives (inputs: name; params: p)"
        );
        let error = render(
            "{{a}} {{params.b}} {{a}} {{c}}",
            &BTreeMap::new(),
            &Map::new(),
        )
        .unwrap_err();
        assert_eq!(error, "the template uses {{a}}, {{params.b}} and {{c}}, which no input or param give (inputs: none; params: none)");
        let error = render(
            "{{audience}}",
            &BTreeMap::new(),
            &params(json!({"audience": "x"})),
        )
        .unwrap_err();
        assert!(
            error.contains("{{audience}}"),
            "a param is read only as params.<key>: {error}"
        );
        let error = render(
            "{{params.research}}",
            &inputs(&[("research", "x")]),
            &Map::new(),
        )
        .unwrap_err();
        assert!(
            error.contains("{{params.research}}"),
            "an input is not a param: {error}"
        );
    }

    #[test]
    fn malformed_braces_name_their_line() {
        let cases = [
            (
                "first\nsecond {{ never closed",
                "line 2: a `{{` is never closed",
            ),
            (
                "{{#each items}}",
                "line 1: `{{#each items}}` is not a placeholder",
            ),
            (
                "a\nb\n{{ two words }}",
                "line 3: `{{ two words }}` is not a placeholder",
            ),
            ("{{}}", "line 1: `{{}}` is not a placeholder"),
            ("{{params.}}", "line 1: `{{params.}}` is not a placeholder"),
            ("{{{x}}}", "line 1: `{{{x}}` is not a placeholder"),
        ];
        for (template, expected) in cases {
            let error = render(template, &inputs(&[("x", "1")]), &Map::new()).unwrap_err();
            assert!(
                error.starts_with(expected),
                "{template:?}: `{error}` should start with `{expected}`"
            );
            assert_eq!(check(template), Err(error));
        }
        assert_eq!(check("{{ ok }} \\{{ fine"), Ok(()));
    }

    #[test]
    fn placeholders_are_distinct_and_in_order() {
        assert_eq!(
            placeholders("{{ b }} {{a}} {{params.p}} {{b}} {{ bad name }} {{a-b.c}} {{_x}}"),
            ["b", "a", "params.p", "a-b.c", "_x"]
        );
    }
}
