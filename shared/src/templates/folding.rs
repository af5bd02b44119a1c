//! minijinja folds constant expressions while it compiles (`{{ 'a' * 10**8 }}` becomes
//! one 100 MB constant, `[1] * 10**9` a billion-item sequence) before any render
//! budget applies. So before a part is compiled, every constant expression is sized
//! from the syntax tree alone, without evaluating it, and a part whose constants would
//! be larger than [`MAX_CONSTANT_BYTES`] is refused.

use minijinja::machinery::ast::{self, BinOpKind, Expr, Stmt};
use minijinja::value::ValueKind;

/// The most bytes one folded constant may take.
pub const MAX_CONSTANT_BYTES: u128 = 64 * 1024;

/// What a value costs to hold (sequence items count as 16 bytes each).
const ITEM_BYTES: u128 = 16;

/// An upper bound for a constant: its bytes, and its magnitude if it is a number
/// (how many times it may repeat a string or a sequence).
#[derive(Clone, Copy)]
struct Size {
    bytes: u128,
    count: Option<u128>,
}

/// The size of the first constant in `template` that would fold into more than the
/// limit. One pass over the tree: every expression is sized once, bottom up.
pub fn oversized_constant(template: &Stmt<'_>) -> Option<u128> {
    let mut found = None;
    visit_stmt(template, &mut |expr| {
        size(expr, &mut found);
    });
    found
}

/// Sizes every expression under `expr`, noting in `found` one over the limit, and
/// returns `expr`'s own size if the compiler would fold it into a constant.
fn size(expr: &Expr<'_>, found: &mut Option<u128>) -> Option<Size> {
    let result = match expr {
        Expr::Const(c) => Some(match c.value.kind() {
            ValueKind::Number => {
                let n = f64::try_from(c.value.clone()).unwrap_or(f64::MAX).abs();
                Size { bytes: 24, count: Some(if n >= 1e30 { u128::MAX } else { n as u128 }) }
            }
            _ => Size { bytes: c.value.to_string().len() as u128, count: None },
        }),
        Expr::List(list) => items(list.items.iter(), found),
        Expr::Map(map) => items(map.keys.iter().chain(&map.values), found),
        Expr::UnaryOp(op) => size(&op.expr, found),
        Expr::Compare(compare) => {
            let mut all = size(&compare.expr, found).is_some();
            for op in &compare.ops {
                all &= size(&op.expr, found).is_some();
            }
            all.then_some(Size { bytes: 1, count: Some(1) })
        }
        Expr::BinOp(op) => {
            let (a, b) = (size(&op.left, found), size(&op.right, found));
            a.zip(b).map(|(a, b)| binary(&op.op, a, b))
        }
        other => {
            for child in children(other) {
                size(child, found);
            }
            None
        }
    };
    if let Some(s) = result
        && s.bytes > MAX_CONSTANT_BYTES
        && found.is_none()
    {
        *found = Some(s.bytes);
    }
    result
}

fn items<'x, 'a: 'x>(
    items: impl Iterator<Item = &'x Expr<'a>>,
    found: &mut Option<u128>,
) -> Option<Size> {
    let mut total = Some(0u128);
    for item in items {
        let item = size(item, found);
        total = total.zip(item).map(|(t, i)| t.saturating_add(i.bytes).saturating_add(ITEM_BYTES));
    }
    total.map(|bytes| Size { bytes, count: None })
}

/// The direct sub-expressions of an expression that never folds.
fn children<'x, 'a>(expr: &'x Expr<'a>) -> Vec<&'x Expr<'a>> {
    let mut out = Vec::new();
    let args = |args: &'x [ast::CallArg<'a>], out: &mut Vec<&'x Expr<'a>>| {
        for arg in args {
            match arg {
                ast::CallArg::Pos(e)
                | ast::CallArg::Kwarg(_, e)
                | ast::CallArg::PosSplat(e)
                | ast::CallArg::KwargSplat(e) => out.push(e),
            }
        }
    };
    match expr {
        Expr::Slice(s) => {
            out.push(&s.expr);
            out.extend([&s.start, &s.stop, &s.step].into_iter().flatten());
        }
        Expr::IfExpr(i) => {
            out.extend([&i.test_expr, &i.true_expr]);
            out.extend(&i.false_expr);
        }
        Expr::Filter(x) => {
            out.extend(&x.expr);
            args(&x.args, &mut out);
        }
        Expr::Test(t) => {
            out.push(&t.expr);
            args(&t.args, &mut out);
        }
        Expr::GetAttr(g) => out.push(&g.expr),
        Expr::GetItem(g) => out.extend([&g.expr, &g.subscript_expr]),
        Expr::Call(c) => {
            out.push(&c.expr);
            args(&c.args, &mut out);
        }
        _ => {}
    }
    out
}

fn binary(op: &BinOpKind, a: Size, b: Size) -> Size {
    let sum = a.bytes.saturating_add(b.bytes);
    match op {
        BinOpKind::Mul => match (a.count, b.count) {
            (Some(x), Some(y)) => Size { bytes: 24, count: Some(x.saturating_mul(y)) },
            // A string or a sequence repeated by a number.
            (Some(times), None) => Size { bytes: b.bytes.saturating_mul(times), count: None },
            (None, Some(times)) => Size { bytes: a.bytes.saturating_mul(times), count: None },
            (None, None) => Size { bytes: sum, count: None },
        },
        BinOpKind::Pow => Size {
            bytes: 24,
            count: a.count.zip(b.count).map(|(x, y)| {
                x.checked_pow(u32::try_from(y).unwrap_or(u32::MAX)).unwrap_or(u128::MAX)
            }),
        },
        BinOpKind::Add | BinOpKind::Sub => {
            Size { bytes: sum, count: a.count.zip(b.count).map(|(x, y)| x.saturating_add(y)) }
        }
        _ => Size { bytes: sum, count: a.count.zip(b.count).map(|(x, _)| x) },
    }
}

fn visit_stmts<'a>(stmts: &[Stmt<'a>], f: &mut impl FnMut(&Expr<'a>)) {
    for stmt in stmts {
        visit_stmt(stmt, f);
    }
}

fn visit_call<'a>(call: &ast::Call<'a>, f: &mut impl FnMut(&Expr<'a>)) {
    f(&call.expr);
    for arg in &call.args {
        match arg {
            ast::CallArg::Pos(e)
            | ast::CallArg::Kwarg(_, e)
            | ast::CallArg::PosSplat(e)
            | ast::CallArg::KwargSplat(e) => f(e),
        }
    }
}

fn visit_stmt<'a>(stmt: &Stmt<'a>, f: &mut impl FnMut(&Expr<'a>)) {
    match stmt {
        Stmt::Template(t) => visit_stmts(&t.children, f),
        Stmt::EmitExpr(e) => f(&e.expr),
        Stmt::EmitRaw(_) => {}
        Stmt::ForLoop(l) => {
            f(&l.target);
            f(&l.iter);
            if let Some(e) = &l.filter_expr {
                f(e);
            }
            visit_stmts(&l.body, f);
            visit_stmts(&l.else_body, f);
        }
        Stmt::IfCond(c) => {
            f(&c.expr);
            visit_stmts(&c.true_body, f);
            visit_stmts(&c.false_body, f);
        }
        Stmt::WithBlock(w) => {
            for (target, value) in &w.assignments {
                f(target);
                f(value);
            }
            visit_stmts(&w.body, f);
        }
        Stmt::Set(s) => {
            f(&s.target);
            f(&s.expr);
        }
        Stmt::SetBlock(s) => {
            if let Some(e) = &s.filter {
                f(e);
            }
            visit_stmts(&s.body, f);
        }
        Stmt::AutoEscape(a) => {
            f(&a.enabled);
            visit_stmts(&a.body, f);
        }
        Stmt::FilterBlock(b) => {
            f(&b.filter);
            visit_stmts(&b.body, f);
        }
        Stmt::Block(b) => visit_stmts(&b.body, f),
        Stmt::Import(i) => f(&i.expr),
        Stmt::FromImport(i) => f(&i.expr),
        Stmt::Extends(e) => f(&e.name),
        Stmt::Include(i) => f(&i.name),
        Stmt::Macro(m) => visit_macro(m, f),
        Stmt::CallBlock(c) => {
            visit_call(&c.call, f);
            visit_macro(&c.macro_decl, f);
        }
        Stmt::Do(d) => visit_call(&d.call, f),
    }
}

fn visit_macro<'a>(m: &ast::Macro<'a>, f: &mut impl FnMut(&Expr<'a>)) {
    for e in m.args.iter().chain(&m.defaults) {
        f(e);
    }
    visit_stmts(&m.body, f);
}
