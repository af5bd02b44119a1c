//! Rendering with minijinja: sandboxed (no file or network access, a fuel limit on
//! every render), strict about undefined variables (the error names the variable),
//! HTML auto-escaping in email html and nowhere else, and filters for dates and numbers
//! in the recipient's locale and time zone. Compiled templates are cached by key.

use super::TemplateParts;
use super::format::{Moment, moment, number};
use super::sandbox::{self, Budget, CompiledPart};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use minijinja::value::Value as JinjaValue;
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State, UndefinedBehavior};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, RwLock};

/// Instructions one render may spend: plenty for any message, a stop for a loop over
/// `range(10**9)`.
const FUEL: u64 = 200_000;

/// Where a template failed, for a 422 that points at it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    #[error("{part}: syntax error at line {line}, column {column}: {message}")]
    Syntax { part: String, line: usize, column: usize, message: String },
    #[error("{part}: undefined variable '{variable}'")]
    Undefined { part: String, variable: String },
    #[error("{part}: {message}")]
    Render { part: String, message: String },
    #[error("{part}: the rendered text is larger than the limit of {limit} bytes")]
    TooLarge { part: String, limit: usize },
}

impl TemplateError {
    pub fn part(&self) -> &str {
        match self {
            TemplateError::Syntax { part, .. }
            | TemplateError::Undefined { part, .. }
            | TemplateError::Render { part, .. }
            | TemplateError::TooLarge { part, .. } => part,
        }
    }
}

/// Who the message is for: their locale and time zone shape dates and numbers.
#[derive(Debug, Clone)]
pub struct Recipient {
    pub locale: Option<String>,
    pub time_zone: Tz,
}

impl Default for Recipient {
    fn default() -> Self {
        Self { locale: None, time_zone: chrono_tz::UTC }
    }
}

/// How much one part of a render may build (see `sandbox`): what it emits, raw text
/// and captures included, and every string it makes along the way.
pub const DEFAULT_MAX_PART_BYTES: usize = 512 * 1024;

/// Compiled parts kept at most; a full cache is emptied (templates are compiled again
/// on their next use, which costs microseconds).
const CACHE_ENTRIES: usize = 4096;

/// A compiled part and the variables it reads that a render must supply.
struct Compiled {
    part: CompiledPart,
    undeclared: Vec<String>,
}

pub struct Renderer {
    env: Environment<'static>,
    /// Keyed by a hash of the part's name and text, so a recreated template with new
    /// text never renders the old one, and two apps share only identical text.
    compiled: RwLock<HashMap<[u8; 32], Arc<Compiled>>>,
    max_part_bytes: usize,
}

impl Default for Renderer {
    fn default() -> Self {
        Self::new()
    }
}

/// How a part escapes what it prints: email HTML as HTML; Slack's text, markdown and
/// card text as mrkdwn (`&`, `<`, `>`). Other chat vendors' markdown takes values as
/// they are: none of them documents an escape its renderer honours.
fn escape_for(part: &str) -> AutoEscape {
    if part.ends_with(".html") {
        AutoEscape::Html
    } else if matches!(part, "slack.text" | "slack.markdown.text" | "slack.card.text") {
        AutoEscape::Custom(sandbox::MRKDWN)
    } else {
        AutoEscape::None
    }
}

/// The context variable that carries the recipient to the filters.
const RECIPIENT: &str = "__herald_recipient";

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    sandbox::install(&mut env);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    // Only a part named `*.html` (email html) escapes what it prints.
    env.set_auto_escape_callback(escape_for);
    env.add_filter("number", |state: &State, value: f64, decimals: Option<usize>| {
        number(value, decimals, &locale_of(state))
    });
    for (name, what) in
        [("date", Moment::Date), ("time", Moment::Time), ("datetime", Moment::DateTime)]
    {
        env.add_filter(name, move |state: &State, value: JinjaValue, pattern: Option<String>| {
            let at = instant(&value)?;
            let zone = state
                .lookup(RECIPIENT)
                .and_then(|r| r.get_attr("time_zone").ok())
                .and_then(|z| z.as_str().and_then(|z| z.parse::<Tz>().ok()))
                .unwrap_or(chrono_tz::UTC);
            Ok::<_, Error>(moment(at, what, pattern.as_deref(), &locale_of(state), zone))
        });
    }
    env
}

fn locale_of(state: &State) -> String {
    state
        .lookup(RECIPIENT)
        .and_then(|r| r.get_attr("locale").ok())
        .and_then(|l| l.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// An RFC 3339 string or epoch seconds.
fn instant(value: &JinjaValue) -> Result<DateTime<Utc>, Error> {
    if let Some(text) = value.as_str() {
        return DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).map_err(|e| {
            Error::new(ErrorKind::InvalidOperation, format!("not an RFC 3339 time: {e}"))
        });
    }
    i64::try_from(value.clone()).ok().and_then(|secs| DateTime::from_timestamp(secs, 0)).ok_or_else(
        || Error::new(ErrorKind::InvalidOperation, "not a time (RFC 3339 or epoch seconds)"),
    )
}

/// Line and column (both from 1) of a byte offset.
fn position(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn syntax_error(part: &str, source: &str, e: &Error) -> TemplateError {
    let (line, column) = match e.range() {
        Some(range) => position(source, range.start),
        None => (e.line().unwrap_or(1), 1),
    };
    let message = e.detail().map_or_else(|| e.kind().to_string(), str::to_owned);
    TemplateError::Syntax { part: part.to_owned(), line, column, message }
}

/// Whether `path` (`order.items`) names something in `data`.
fn defined(data: &Value, path: &str) -> bool {
    path.split('.').try_fold(data, |value, key| value.get(key)).is_some()
}

fn hash(part: &str, source: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(part.as_bytes());
    hasher.update([0]);
    hasher.update(source.as_bytes());
    hasher.finalize().into()
}

impl Renderer {
    pub fn new() -> Self {
        Self::with_max_part_bytes(DEFAULT_MAX_PART_BYTES)
    }

    /// A renderer whose parts may each build at most `max_part_bytes`.
    pub fn with_max_part_bytes(max_part_bytes: usize) -> Self {
        Self { env: environment(), compiled: RwLock::default(), max_part_bytes }
    }

    pub fn max_part_bytes(&self) -> usize {
        self.max_part_bytes
    }

    /// Compiles every part of `parts`; the first syntax error, with its line and column.
    pub fn check(parts: &TemplateParts) -> Result<(), TemplateError> {
        for (part, source) in parts.sources() {
            CompiledPart::build(&part, &source).map_err(|e| syntax_error(&part, &source, &e))?;
        }
        Ok(())
    }

    /// Renders every part of `parts` with `data` for `recipient`.
    pub fn render(
        &self,
        parts: &TemplateParts,
        data: &Value,
        recipient: &Recipient,
    ) -> Result<TemplateParts, TemplateError> {
        let mut context = data.as_object().cloned().unwrap_or_default();
        // The sandbox's own names are not data.
        context.retain(|key, _| !key.starts_with(sandbox::RESERVED_PREFIX));
        context.insert(
            RECIPIENT.to_owned(),
            serde_json::json!({
                "locale": recipient.locale.clone().unwrap_or_default(),
                "time_zone": recipient.time_zone.name(),
            }),
        );
        let context = JinjaValue::from_serialize(&context);
        parts.try_map(|part, source| self.render_part(part, source, data, &context))
    }

    fn render_part(
        &self,
        part: &str,
        source: &str,
        data: &Value,
        context: &JinjaValue,
    ) -> Result<String, TemplateError> {
        let compiled = self.compile(part, source)?;
        if let Some(variable) = compiled.undeclared.iter().filter(|v| !defined(data, v)).min() {
            return Err(TemplateError::Undefined {
                part: part.to_owned(),
                variable: variable.clone(),
            });
        }
        let escape = escape_for(part);
        let budget = Budget::start(self.max_part_bytes);
        // A bug in a filter must cost this render, not the process or the connection.
        let result = catch_unwind(AssertUnwindSafe(|| {
            compiled.part.render(&self.env, context.clone(), escape)
        }));
        let too_large =
            || TemplateError::TooLarge { part: part.to_owned(), limit: self.max_part_bytes };
        match result {
            Ok(Ok(text)) if text.len() > self.max_part_bytes => Err(too_large()),
            Ok(Ok(text)) => Ok(text),
            Ok(Err(_)) if budget.exhausted() => Err(too_large()),
            Ok(Err(e)) => Err(match e.kind() {
                ErrorKind::UndefinedError => TemplateError::Undefined {
                    part: part.to_owned(),
                    variable: e.detail().unwrap_or("a value").to_owned(),
                },
                _ => TemplateError::Render { part: part.to_owned(), message: e.to_string() },
            }),
            Err(_) => Err(TemplateError::Render {
                part: part.to_owned(),
                message: "the template could not be rendered".to_owned(),
            }),
        }
    }

    /// The compiled part for this text, compiled now if it is not cached.
    fn compile(&self, part: &str, source: &str) -> Result<Arc<Compiled>, TemplateError> {
        let key = hash(part, source);
        if let Some(found) = self.compiled.read().expect("not poisoned").get(&key) {
            return Ok(found.clone());
        }
        let compiled =
            CompiledPart::build(part, source).map_err(|e| syntax_error(part, source, &e))?;
        // Variables the part reads and the data must supply (not globals like `range`).
        let plain = Environment::new();
        let undeclared = plain
            .template_from_str(source)
            .map_err(|e| syntax_error(part, source, &e))?
            .undeclared_variables(true)
            .into_iter()
            .filter(|v| !v.starts_with(RECIPIENT))
            .filter(|v| {
                let root = v.split('.').next().unwrap_or(v);
                !self.env.globals().any(|(name, _)| name == root)
            })
            .collect();
        let compiled = Arc::new(Compiled { part: compiled, undeclared });
        let mut cache = self.compiled.write().expect("not poisoned");
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key, compiled.clone());
        Ok(compiled)
    }
}
