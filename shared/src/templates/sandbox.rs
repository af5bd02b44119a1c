//! The template sandbox: what a render may build, and how much of it.
//!
//! minijinja's fuel bounds how many instructions a render runs, but one instruction can
//! build a huge value (`'a' * 10**8`, `s ~ s` doubled in a loop, `indent(10**11)`,
//! raw text inside a long loop). So every compiled part is rewritten: each step that
//! makes a new string goes through a function here that checks its size against the
//! render's byte budget *before* building it. Charged are raw text and everything
//! emitted (output and captures alike), `~`, `+`, `*`, slices, and the filters that
//! build strings; `format` (printf widths) is gone. Sequences may not grow past
//! [`MAX_ITEMS`] by `+`, `*`, `chain`, `batch` or `slice`.
//!
//! A part sees nothing but its own instructions: the environment holds no templates
//! and no loader, a part that uses `include`, `import`, `from` or `extends` is refused
//! when it is compiled, and the `debug()` function (which listed every template) is removed (the `debug`
//! feature stays on for the error positions it records).

use minijinja::machinery::{
    CodeGenerator, Instruction, Instructions, Vm, WhitespaceConfig, make_string_output, parse,
};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Rest, Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, HtmlEscape, State, filters};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::LazyLock;

/// The most items a sequence built inside a template may have (minijinja's own
/// `range` stops at the same number).
pub const MAX_ITEMS: usize = 100_000;

/// Names reserved for the sandbox's own functions; a template may not use them.
pub const RESERVED_PREFIX: &str = "__herald";
const CONCAT: &str = "__herald_concat";
const ADD: &str = "__herald_add";
const MUL: &str = "__herald_mul";
const SLICE: &str = "__herald_slice";

thread_local! {
    /// Bytes the render on this thread may still build; `None` outside a render.
    static REMAINING: Cell<Option<usize>> = const { Cell::new(None) };
    /// Whether the render on this thread ran out of budget.
    static EXHAUSTED: Cell<bool> = const { Cell::new(false) };
}

/// The budget of the render running on this thread, until dropped.
pub struct Budget(());

impl Budget {
    pub fn start(bytes: usize) -> Budget {
        REMAINING.set(Some(bytes));
        EXHAUSTED.set(false);
        Budget(())
    }

    /// Whether the render stopped because it spent its budget.
    pub fn exhausted(&self) -> bool {
        EXHAUSTED.get()
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        REMAINING.set(None);
    }
}

fn over_budget() -> Error {
    EXHAUSTED.set(true);
    Error::new(ErrorKind::InvalidOperation, "the render is larger than its byte limit")
}

fn remaining() -> usize {
    REMAINING.get().unwrap_or(usize::MAX)
}

/// Takes `bytes` from the budget, or fails if they are not there.
fn charge(bytes: usize) -> Result<(), Error> {
    match REMAINING.get() {
        Some(left) if bytes <= left => {
            REMAINING.set(Some(left - bytes));
            Ok(())
        }
        Some(_) => Err(over_budget()),
        None => Ok(()),
    }
}

/// Counts what is written, and refuses to count past a limit (so measuring a huge
/// lazy value stops early instead of walking all of it).
struct Counter {
    len: usize,
    limit: usize,
}

impl fmt::Write for Counter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.len += s.len();
        if self.len > self.limit { Err(fmt::Error) } else { Ok(()) }
    }
}

/// The length of what `write` produces, if it fits in what the render has left.
fn measure(write: impl FnOnce(&mut Counter) -> fmt::Result) -> Result<usize, Error> {
    let mut counter = Counter { len: 0, limit: remaining() };
    write(&mut counter).map_err(|_| over_budget())?;
    Ok(counter.len)
}

fn display_len(value: &Value) -> Result<usize, Error> {
    measure(|w| write!(w, "{value}"))
}

/// `value` as text, charged.
fn text_of(value: &Value) -> Result<String, Error> {
    charge(display_len(value)?)?;
    Ok(value.to_string())
}

fn is_sequence(value: &Value) -> bool {
    matches!(value.kind(), ValueKind::Seq | ValueKind::Iterable)
}

/// The number of items of a sequence, refused when unknown or over [`MAX_ITEMS`].
fn items(value: &Value) -> Result<usize, Error> {
    match value.len() {
        Some(n) if n <= MAX_ITEMS => Ok(n),
        _ => Err(too_many_items()),
    }
}

fn too_many_items() -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("a sequence may have at most {MAX_ITEMS} items"),
    )
}

/// minijinja's own semantics for `a <op> b`, once the sandbox has checked the sizes.
/// The operations [`native`] evaluates, each compiled once.
#[derive(Clone, Copy)]
enum Native {
    Add,
    Mul,
    Slice,
}

fn native(operation: Native, a: Value, b: Value) -> Result<Value, Error> {
    static PLAIN: LazyLock<Environment<'static>> = LazyLock::new(Environment::new);
    static COMPILED: LazyLock<[minijinja::Expression<'static, 'static>; 3]> = LazyLock::new(|| {
        ["a + b", "a * b", "a[b[0]:b[1]:b[2]]"]
            .map(|source| PLAIN.compile_expression(source).expect("a valid expression"))
    });
    COMPILED[operation as usize].eval(minijinja::context! { a => a, b => b })
}

fn undefined(a: &Value, b: &Value) -> Result<(), Error> {
    if a.is_undefined() || b.is_undefined() {
        return Err(Error::new(ErrorKind::UndefinedError, "an operand is undefined"));
    }
    Ok(())
}

fn concat(a: Value, b: Value) -> Result<Value, Error> {
    undefined(&a, &b)?;
    let mut text = text_of(&a)?;
    text.push_str(&text_of(&b)?);
    Ok(Value::from(text))
}

fn add(a: Value, b: Value) -> Result<Value, Error> {
    undefined(&a, &b)?;
    if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
        charge(x.len() + y.len())?;
    } else if is_sequence(&a) && is_sequence(&b) && items(&a)? + items(&b)? > MAX_ITEMS {
        return Err(too_many_items());
    }
    native(Native::Add, a, b)
}

fn mul(a: Value, b: Value) -> Result<Value, Error> {
    undefined(&a, &b)?;
    for (this, times) in [(&a, &b), (&b, &a)] {
        let n = times.as_usize().unwrap_or(0);
        if let Some(text) = this.as_str() {
            charge(text.len().saturating_mul(n))?;
        } else if is_sequence(this) && items(this)?.checked_mul(n).is_none_or(|t| t > MAX_ITEMS) {
            return Err(too_many_items());
        }
    }
    native(Native::Mul, a, b)
}

fn slice(value: Value, start: Value, stop: Value, step: Value) -> Result<Value, Error> {
    // minijinja 2.24 panics on a backwards slice of an empty string or sequence; a
    // slice of nothing is nothing.
    if value.len() == Some(0) {
        return Ok(value);
    }
    // A slice of a string is at most as long as the string.
    if let Some(text) = value.as_str() {
        charge(text.len())?;
    }
    let bounds = Value::from(vec![start, stop, step]);
    native(Native::Slice, value, bounds)
}

/// The auto-escape of parts Slack reads as mrkdwn.
pub const MRKDWN: &str = "mrkdwn";

/// Writes what a template emits, output and captures alike, charged first.
fn emit(out: &mut minijinja::Output, state: &State, value: &Value) -> Result<(), Error> {
    if let AutoEscape::Custom(MRKDWN) = state.auto_escape() {
        // Slack's mrkdwn: `&`, `<` and `>` are markup (links, mentions); a value is
        // text. At most five bytes out per byte in.
        let text = text_of(value)?;
        if value.is_safe() {
            return out.write_str(&text).map_err(|_| over_budget());
        }
        charge(text.len().saturating_mul(4))?;
        return out
            .write_str(&crate::channels::slack::escape_mrkdwn(&text))
            .map_err(|_| over_budget());
    }
    let len = display_len(value)?;
    let escapes = !matches!(state.auto_escape(), AutoEscape::None) && !value.is_safe();
    if escapes && value.as_str().is_some() {
        let text = value.as_str().unwrap_or_default();
        charge(measure(|w| write!(w, "{}", HtmlEscape(text)))?)?;
    } else {
        // Numbers and other values escape to no more than their text.
        charge(if escapes { len.saturating_mul(6) } else { len })?;
    }
    minijinja::escape_formatter(out, state, value)
}

/// A builtin filter behind a check that charges what it will build, before it runs.
fn guarded(
    env: &mut Environment<'static>,
    name: &'static str,
    builtin: Value,
    cost: fn(&[Value]) -> Result<usize, Error>,
) {
    env.add_filter(name, move |state: &State, args: Rest<Value>| {
        charge(cost(&args)?)?;
        builtin.call(state, &args)
    });
}

fn arg(args: &[Value], i: usize) -> Value {
    args.get(i).cloned().unwrap_or_default()
}

fn text_cost(args: &[Value]) -> Result<usize, Error> {
    display_len(&arg(args, 0))
}

/// Case mapping may triple a character's bytes (`ß` → `SS` is the common case).
fn case_cost(args: &[Value]) -> Result<usize, Error> {
    Ok(display_len(&arg(args, 0))?.saturating_mul(3))
}

fn escape_cost(args: &[Value]) -> Result<usize, Error> {
    Ok(display_len(&arg(args, 0))?.saturating_mul(6))
}

fn pprint_cost(args: &[Value]) -> Result<usize, Error> {
    let value = arg(args, 0);
    measure(|w| write!(w, "{value:#?}"))
}

fn indent_cost(args: &[Value]) -> Result<usize, Error> {
    let text = arg(args, 0);
    let width = arg(args, 1);
    let width = width.as_usize().or_else(|| width.as_str().map(str::len)).unwrap_or(0);
    let lines = text.as_str().map_or(1, |t| t.lines().count() + 1);
    Ok(display_len(&text)?.saturating_add(lines.saturating_mul(width)))
}

fn replace_cost(args: &[Value]) -> Result<usize, Error> {
    let (text, from, to) = (arg(args, 0), arg(args, 1), arg(args, 2));
    let text = text.as_str().unwrap_or_default();
    let from = from.as_str().unwrap_or_default();
    let times = if from.is_empty() { text.chars().count() + 1 } else { text.matches(from).count() };
    Ok(text.len().saturating_add(times.saturating_mul(display_len(&to)?)))
}

fn join_cost(args: &[Value]) -> Result<usize, Error> {
    let separator = display_len(&arg(args, 1))?;
    let mut total = 0usize;
    for (i, item) in arg(args, 0).try_iter()?.enumerate() {
        if i >= MAX_ITEMS {
            return Err(too_many_items());
        }
        total = total.saturating_add(display_len(&item)?).saturating_add(separator);
        if total > remaining() {
            return Err(over_budget());
        }
    }
    Ok(total)
}

fn chain_cost(args: &[Value]) -> Result<usize, Error> {
    let mut total = 0usize;
    for value in args.iter().filter(|v| is_sequence(v)) {
        total += items(value)?;
    }
    if total > MAX_ITEMS { Err(too_many_items()) } else { Ok(0) }
}

/// `batch(n)` and `slice(n)` make `n`-sized groups (padded with `fill_with`).
fn count_cost(args: &[Value]) -> Result<usize, Error> {
    match arg(args, 1).as_usize() {
        Some(n) if n <= MAX_ITEMS => Ok(0),
        _ => Err(too_many_items()),
    }
}

/// Installs the sandbox's operators, formatter and guarded filters into `env`.
pub fn install(env: &mut Environment<'static>) {
    env.add_function(CONCAT, concat);
    env.add_function(ADD, add);
    env.add_function(MUL, mul);
    env.add_function(SLICE, slice);
    env.set_formatter(emit);
    env.remove_filter("format");
    env.remove_global("debug");
    let text: [(&'static str, Value); 6] = [
        ("safe", Value::from_function(filters::safe)),
        ("trim", Value::from_function(filters::trim)),
        ("string", Value::from_function(filters::string)),
        ("lines", Value::from_function(filters::lines)),
        ("split", Value::from_function(filters::split)),
        ("capitalize", Value::from_function(filters::capitalize)),
    ];
    for (name, builtin) in text {
        guarded(env, name, builtin, text_cost);
    }
    for (name, builtin) in [
        ("lower", Value::from_function(filters::lower)),
        ("upper", Value::from_function(filters::upper)),
        ("title", Value::from_function(filters::title)),
    ] {
        guarded(env, name, builtin, case_cost);
    }
    let escape = Value::from_function(filters::escape);
    guarded(env, "escape", escape.clone(), escape_cost);
    guarded(env, "e", escape, escape_cost);
    guarded(env, "pprint", Value::from_function(filters::pprint), pprint_cost);
    guarded(env, "indent", Value::from_function(filters::indent), indent_cost);
    guarded(env, "replace", Value::from_function(filters::replace), replace_cost);
    guarded(env, "join", Value::from_function(filters::join), join_cost);
    guarded(env, "chain", Value::from_function(filters::chain), chain_cost);
    guarded(env, "batch", Value::from_function(filters::batch), count_cost);
    guarded(env, "slice", Value::from_function(filters::slice), count_cost);
}

/// A part's compiled instructions, rewritten so that every growing step is charged.
pub struct Program<'source> {
    root: Instructions<'source>,
    blocks: BTreeMap<&'source str, Instructions<'source>>,
}

/// A part's name and text, which its program borrows.
pub struct Source {
    name: String,
    text: String,
}

self_cell::self_cell!(
    /// One compiled part, owning its source.
    pub struct CompiledPart {
        owner: Source,
        #[covariant]
        dependent: Program,
    }
);

impl CompiledPart {
    /// Parses and compiles `text`; syntax errors carry minijinja's position.
    pub fn build(name: &str, text: &str) -> Result<CompiledPart, Error> {
        if text.contains(RESERVED_PREFIX) {
            return Err(Error::new(
                ErrorKind::SyntaxError,
                format!("names starting with {RESERVED_PREFIX} are reserved"),
            ));
        }
        let source = Source { name: name.to_owned(), text: text.to_owned() };
        CompiledPart::try_new(source, |source| {
            let ast = parse(&source.text, &source.name, SyntaxConfig, WhitespaceConfig::default())?;
            if let Some(bytes) = super::folding::oversized_constant(&ast) {
                return Err(Error::new(
                    ErrorKind::SyntaxError,
                    format!(
                        "a constant expression would be {bytes} bytes; at most {} are allowed",
                        super::folding::MAX_CONSTANT_BYTES
                    ),
                ));
            }
            let mut generator = CodeGenerator::new(&source.name, &source.text);
            generator.compile_stmt(&ast);
            let (root, blocks) = generator.finish();
            if reaches_other_templates(&root) || blocks.values().any(reaches_other_templates) {
                return Err(Error::new(
                    ErrorKind::SyntaxError,
                    "a template may not include, import or extend other templates",
                ));
            }
            Ok(Program {
                root: rewrite(&root),
                blocks: blocks.iter().map(|(name, block)| (*name, rewrite(block))).collect(),
            })
        })
    }

    /// Renders into a string with `context`; the caller has started a [`Budget`].
    pub fn render(
        &self,
        env: &Environment<'static>,
        context: Value,
        auto_escape: AutoEscape,
    ) -> Result<String, Error> {
        let mut text = String::new();
        self.with_dependent(|_, program| {
            let mut out = make_string_output(&mut text);
            Vm::new(env).eval(&program.root, context, &program.blocks, &mut out, auto_escape)
        })?;
        Ok(text)
    }
}

fn reaches_other_templates(program: &Instructions<'_>) -> bool {
    (0..program.len() as u32).any(|i| {
        matches!(
            program.get(i),
            Some(Instruction::Include(_) | Instruction::LoadBlocks | Instruction::ExportLocals)
        )
    })
}

/// The same program with raw text emitted as a constant (so the formatter charges
/// it), and `~`, `+`, `*` and slices as calls to the sandbox's functions. Raw text
/// takes two instructions, so jump targets are renumbered.
fn rewrite<'s>(old: &Instructions<'s>) -> Instructions<'s> {
    let count = old.len() as u32;
    let mut at = Vec::with_capacity(old.len() + 1);
    let mut next = 0u32;
    for i in 0..count {
        at.push(next);
        next += if matches!(old.get(i), Some(Instruction::EmitRaw(_))) { 2 } else { 1 };
    }
    at.push(next);
    let target = |t: &u32| at[*t as usize];
    let mut new = Instructions::new(old.name(), old.source());
    for i in 0..count {
        let line = old.get_line(i).unwrap_or(1) as u16;
        let Some(instruction) = old.get(i) else { break };
        let replaced = match instruction {
            Instruction::EmitRaw(text) => {
                new.add_with_line(
                    Instruction::LoadConst(Value::from_safe_string((*text).into())),
                    line,
                );
                Instruction::Emit
            }
            Instruction::StringConcat => Instruction::CallFunction(CONCAT, Some(2)),
            Instruction::Add => Instruction::CallFunction(ADD, Some(2)),
            Instruction::Mul => Instruction::CallFunction(MUL, Some(2)),
            Instruction::Slice => Instruction::CallFunction(SLICE, Some(4)),
            Instruction::Jump(t) => Instruction::Jump(target(t)),
            Instruction::JumpIfFalse(t) => Instruction::JumpIfFalse(target(t)),
            Instruction::JumpIfFalseOrPop(t) => Instruction::JumpIfFalseOrPop(target(t)),
            Instruction::JumpIfTrueOrPop(t) => Instruction::JumpIfTrueOrPop(target(t)),
            Instruction::Iterate(t) => Instruction::Iterate(target(t)),
            Instruction::BuildMacro(name, t, flags) => {
                Instruction::BuildMacro(name, target(t), *flags)
            }
            other => other.clone(),
        };
        new.add_with_line(replaced, line);
    }
    new
}
