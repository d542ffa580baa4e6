//! Printing: JSON lines in the protobuf JSON mapping for scripts, tables and aligned fields for
//! people.

use std::{
    io::Write,
    sync::LazyLock,
    time::{Duration, SystemTime},
};

use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

/// Every Conclave message's descriptor, from the descriptor set the server also serves.
static POOL: LazyLock<Result<DescriptorPool, String>> =
    LazyLock::new(|| DescriptorPool::decode(crate::proto::FILE_DESCRIPTOR_SET).map_err(|err| format!("the compiled descriptor set does not decode: {err}")));

/// The message descriptor of `M`.
fn descriptor<M: Proto>() -> Result<prost_reflect::MessageDescriptor, String> {
    let pool = POOL.as_ref().map_err(Clone::clone)?;
    pool.get_message_by_name(M::NAME).ok_or_else(|| format!("{} is not in the descriptor set", M::NAME))
}

/// A generated message and its full protobuf name.
pub trait Proto: prost::Message + Default {
    /// `conclave.v1.Run`.
    const NAME: &'static str;
}

macro_rules! proto_names {
    ($($ty:ident),* $(,)?) => {
        $(impl Proto for crate::proto::$ty {
            const NAME: &'static str = concat!("conclave.v1.", stringify!($ty));
        })*
    };
}

proto_names!(
    Run, RunEvent, LogLine, QueueStats, Task, TaskEvent, Debate, DebateEvent, Mission, MissionEvent, Artifact, Worker,
    CreateTaskRequest, CreateDebateRequest, CreateMissionRequest, Skill, SyncSkillsResponse, Recipe, RecipeValidation,
    Card, CardEvent,
);

/// A message as one line of JSON, in the protobuf JSON mapping, with zero values printed (so a
/// script finds every scalar, list and map field; a message field appears once set).
pub fn to_json<M: Proto>(message: &M) -> String {
    encode_json(message).unwrap_or_else(|err| serde_json::json!({ "error": format!("{} cannot be printed as JSON: {err}", M::NAME) }).to_string())
}

fn encode_json<M: Proto>(message: &M) -> Result<String, String> {
    let dynamic = DynamicMessage::decode(descriptor::<M>()?, message.encode_to_vec().as_slice()).map_err(|err| err.to_string())?;
    let options = SerializeOptions::new().skip_default_fields(false);
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::new(&mut out);
    dynamic.serialize_with_options(&mut serializer, &options).map_err(|err| err.to_string())?;
    String::from_utf8(out).map_err(|err| err.to_string())
}

/// A message from its JSON (the protobuf JSON mapping; field names in either case).
pub fn from_json<M: Proto>(json: &str) -> Result<M, String> {
    let descriptor = descriptor::<M>()?;
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let dynamic = DynamicMessage::deserialize(descriptor, &mut deserializer).map_err(|err| err.to_string())?;
    deserializer.end().map_err(|err| err.to_string())?;
    dynamic.transcode_to::<M>().map_err(|err| err.to_string())
}

/// Writes a line on stdout; a closed stdout (`| head`) ends the program quietly.
pub fn line(text: impl AsRef<str>) {
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{}", text.as_ref()).and_then(|()| stdout.flush()).is_err() {
        std::process::exit(0);
    }
}

/// Prints a message as a JSON line.
pub fn json_line<M: Proto>(message: &M) {
    line(to_json(message));
}

/// A time for people: `2026-11-21 07:49:18Z`, or `-`.
pub fn time(timestamp: Option<&prost_types::Timestamp>) -> String {
    let Some(timestamp) = timestamp else { return "-".to_owned() };
    match SystemTime::try_from(*timestamp) {
        Ok(time) => humantime::format_rfc3339_seconds(time).to_string().replacen('T', " ", 1),
        Err(_) => "-".to_owned(),
    }
}

/// How long ago a time was, for people: `3m ago`.
pub fn ago(timestamp: Option<&prost_types::Timestamp>) -> String {
    let Some(then) = timestamp.and_then(|t| SystemTime::try_from(*t).ok()) else { return "-".to_owned() };
    match SystemTime::now().duration_since(then) {
        Ok(elapsed) => format!("{} ago", short_duration(elapsed)),
        Err(err) => format!("in {}", short_duration(err.duration())),
    }
}

/// A duration for people: its largest unit only past a minute (`3m`, `2h`), else seconds.
pub fn short_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// A protobuf duration for people (`1h 30m`, `250ms`), or `-`.
pub fn duration(value: Option<&prost_types::Duration>) -> String {
    let Some(value) = value else { return "-".to_owned() };
    match Duration::try_from(*value) {
        Ok(duration) => humantime::format_duration(duration).to_string(),
        Err(_) => "-".to_owned(),
    }
}

/// An enum value's name for people: `RUN_STATE_SUCCEEDED` with prefix `RUN_STATE_` is
/// `succeeded`.
pub fn enum_name(name: Option<&str>, prefix: &str) -> String {
    match name {
        Some(name) => name.strip_prefix(prefix).unwrap_or(name).to_ascii_lowercase(),
        None => "?".to_owned(),
    }
}

/// A run state's name for people.
pub fn run_state(state: i32) -> String {
    enum_name(crate::proto::RunState::try_from(state).ok().map(|s| s.as_str_name()), "RUN_STATE_")
}

/// A byte count for people: `1.5 MiB`.
pub fn bytes(size: u64) -> String {
    indicatif::HumanBytes(size).to_string()
}

/// Labels as `k=v,k=v`, sorted.
pub fn labels(labels: &std::collections::HashMap<String, String>) -> String {
    let mut pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    pairs.join(",")
}

/// A text cut to `max` characters, on one line.
pub fn cut(text: &str, max: usize) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// JSON from a protobuf `Struct`.
pub fn struct_json(value: &prost_types::Struct) -> serde_json::Value {
    serde_json::Value::Object(value.fields.iter().map(|(k, v)| (k.clone(), value_json(v))).collect())
}

/// JSON from a protobuf `Value`.
pub fn value_json(value: &prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind;
    match &value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::NumberValue(n)) => {
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                serde_json::Value::from(*n as i64)
            } else {
                serde_json::Number::from_f64(*n).map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
        }
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::ListValue(list)) => serde_json::Value::Array(list.values.iter().map(value_json).collect()),
        Some(Kind::StructValue(object)) => struct_json(object),
    }
}

/// Aligned `name  value` lines; empty values are left out.
#[derive(Debug, Default)]
pub struct Fields(Vec<(&'static str, String)>);

impl Fields {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a field (left out when the value is empty or `-`).
    pub fn add(&mut self, name: &'static str, value: impl Into<String>) -> &mut Self {
        let value = value.into();
        if !value.is_empty() && value != "-" {
            self.0.push((name, value));
        }
        self
    }

    pub fn print(&self) {
        let width = self.0.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
        for (name, value) in &self.0 {
            let mut lines = value.lines();
            line(format!("{:width$}  {}", format!("{name}:"), lines.next().unwrap_or(""), width = width + 1));
            for more in lines {
                line(format!("{:width$}  {more}", "", width = width + 1));
            }
        }
    }
}

/// A table with a header and aligned columns.
#[derive(Debug)]
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&'static str]) -> Self {
        Self { header: header.to_vec(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn print(&self) {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (index, cell) in row.iter().enumerate().take(columns) {
                widths[index] = widths[index].max(cell.chars().count());
            }
        }
        let render = |cells: Vec<&str>| {
            let mut text = String::new();
            for (index, cell) in cells.iter().enumerate() {
                if index + 1 == cells.len() {
                    text.push_str(cell);
                } else {
                    text.push_str(cell);
                    text.extend(std::iter::repeat_n(' ', widths[index] - cell.chars().count() + 2));
                }
            }
            text.trim_end().to_owned()
        };
        line(render(self.header.clone()));
        for row in &self.rows {
            line(render(row.iter().map(String::as_str).collect()));
        }
    }
}
