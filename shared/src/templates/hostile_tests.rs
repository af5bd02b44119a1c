//! Templates written by an attacker: they must fail cleanly, stay under the byte
//! budget, and see nothing of other templates.

use super::*;
use crate::channels::{EmailContent, SmsContent};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

const LIMIT: usize = 64 * 1024;

fn sms(text: &str) -> TemplateParts {
    TemplateParts {
        sms: Some(SmsContent { text: text.into(), ..Default::default() }),
        ..Default::default()
    }
}

fn render(renderer: &Renderer, text: &str) -> Result<String, TemplateError> {
    let data = json!({"s": "ab", "l": ["x", "y"], "price": 2.5, "qty": 4, "name": "Ann", "n": 1_000_000_000});
    renderer.render(&sms(text), &data, &Recipient::default()).map(|p| p.sms.unwrap().text)
}

fn too_large(result: Result<String, TemplateError>) {
    match result {
        Err(TemplateError::TooLarge { part, limit }) => {
            assert_eq!((part.as_str(), limit), ("sms.text", LIMIT));
        }
        other => panic!("expected the byte limit, got {other:?}"),
    }
}

#[test]
fn sizing_arguments_are_charged_before_anything_is_built() {
    let renderer = Renderer::with_max_part_bytes(LIMIT);
    for text in [
        "{{ 'a\\nb' | indent(100000000000) }}",
        "{{ 'a\\nb' | indent(18446744073709551615) }}",
        "{{ 'a\\nb' | indent(n * 100) }}",
        "{% set s = 'a' * (n // 10) %}{{ s ~ s ~ s ~ s ~ s }}",
        "{{ 'a' * (n // 10000) }}",
        "{{ s | replace('', 'x' * 60000) }}",
        "{% set ns = namespace(s='ab') %}{% for i in range(100) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "{% set ns = namespace(s='ab') %}{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
        "{% for i in range(100000) %}0123456789{% endfor %}",
        "{% set x %}{% for i in range(100000) %}{{ s }}{{ s }}{% endfor %}{% endset %}",
        "{{ ([s] * 50000) | join }}",
        "{{ ('x' * 60000)[::-1] ~ ('x' * 60000)[::-1] }}",
        "{{ ('x' * 60000) | upper | upper }}",
        "{% macro m(x) %}{{ x }}{{ x }}{% endmacro %}{{ m(m(m(m(m(m(m(m(m(m(m(m(m(m(m(m(s)))))))))))))))) }}",
    ] {
        too_large(render(&renderer, text));
    }
}

#[test]
fn sequences_stop_at_the_item_limit() {
    let renderer = Renderer::with_max_part_bytes(LIMIT);
    for text in [
        "{{ ([1] * n) | length }}",
        "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
        "{{ l | batch(1000000000, 'x') | list | length }}",
        "{{ l | slice(1000000000, 'x') | list | length }}",
        "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l | chain(ns.l) %}{% endfor %}",
    ] {
        match render(&renderer, text) {
            Err(TemplateError::Render { message, .. }) => {
                assert!(message.contains("at most"), "{text}: {message}");
            }
            other => panic!("{text}: expected the item limit, got {other:?}"),
        }
    }
}

#[test]
fn constants_are_sized_before_they_are_folded() {
    for text in [
        "{{ 'a' * 100000000 }}",
        "{{ ([1] * 1000000000) | length }}",
        "{{ 'a' * (1000 * 1000) }}",
        "{{ 'a' * 10 ** 9 }}",
        "{{ ('a' * 60000) ~ ('a' * 60000) }}",
        "{% if ('a' * 100000000) == 'x' %}{% endif %}",
        "{{ x ~ [('ab' * 40000)] }}",
    ] {
        match Renderer::check(&sms(text)) {
            Err(TemplateError::Syntax { message, .. }) => {
                assert!(message.contains("constant expression"), "{text}: {message}");
            }
            other => panic!("{text}: expected a refusal, got {other:?}"),
        }
    }
    assert!(Renderer::check(&sms("{{ 60 * 60 * 24 }} {{ 'ab' * 3 }} {{ [0] * 10 }}")).is_ok());
}

#[test]
fn ordinary_templates_still_work() {
    let renderer = Renderer::with_max_part_bytes(LIMIT);
    for (text, expected) in [
        ("{{ name ~ ' ' ~ s }}", "Ann ab"),
        ("{{ price * qty }}", "10.0"),
        ("{{ qty * 3 + 1 }}", "13"),
        ("{{ s * 3 }}", "ababab"),
        ("{{ (l + ['z']) | join(',') }}", "x,y,z"),
        ("{{ ([1, 2] * 2) | join }}", "1212"),
        ("{{ name[:2] }}{{ name[::-1] }}", "AnnnA"),
        ("{{ name | upper | replace('N', 'n') }}", "Ann"),
        ("{{ 'a\\nb' | indent(2) }}", "a\n  b"),
        ("{% for x in l %}{{ loop.index }}{{ x }}{% endfor %}", "1x2y"),
        ("{% macro hi(who) %}hi {{ who }}{% endmacro %}{{ hi(name) }}", "hi Ann"),
        ("{% if qty > 3 %}many{% else %}few{% endif %}", "many"),
        ("{% set x %}{{ name }}!{% endset %}{{ x }}", "Ann!"),
    ] {
        assert_eq!(render(&renderer, text).unwrap(), expected, "{text}");
    }
    // Output up to the limit is fine.
    let big = render(&renderer, &format!("{{{{ 'x' * {} }}}}", LIMIT / 2)).unwrap();
    assert_eq!(big.len(), LIMIT / 2);
}

#[test]
fn raw_html_is_kept_and_data_is_escaped() {
    let parts = TemplateParts {
        email: Some(EmailContent {
            subject: "s".into(),
            text: None,
            html: Some("<b>{{ name }}</b>{% for x in l %}<i>{{ x }}</i>{% endfor %}".into()),
        }),
        ..Default::default()
    };
    let data = json!({"name": "<Ann & co>", "l": ["<", ">"]});
    let out = Renderer::new().render(&parts, &data, &Recipient::default()).unwrap();
    assert_eq!(
        out.email.unwrap().html.unwrap(),
        "<b>&lt;Ann &amp; co&gt;</b><i>&lt;</i><i>&gt;</i>"
    );
}

#[test]
fn a_template_reaches_nothing_but_itself() {
    let renderer = Renderer::new();
    // Another app's template, compiled and cached first.
    render(&renderer, "SECRET of app a").unwrap();
    for text in [
        "{% include 'sms.text' %}",
        "{% import 'sms.text' as x %}",
        "{% extends 'sms.text' %}",
        "{% from 'sms.text' import y %}",
        "{{ __herald_concat('a', 'b') }}",
    ] {
        assert!(Renderer::check(&sms(text)).is_err(), "{text} must not compile");
        assert!(render(&renderer, text).is_err(), "{text} must not render");
    }
    // `debug` is no longer a function: it reads as missing data.
    assert!(matches!(
        render(&renderer, "{{ debug() }}"),
        Err(TemplateError::Undefined { variable, .. }) if variable == "debug"
    ));
}

/// The renderer's fuzz target, bounded: templates stitched from hostile fragments
/// with a fixed seed. None may panic, render past the byte limit, or show another
/// template's text.
#[test]
fn random_hostile_templates_stay_within_bounds() {
    const SIZES: [&str; 7] = ["0", "1", "7", "1000", "65536", "1000000", "100000000000"];
    const FRAGMENTS: [&str; 24] = [
        "{{ s }}",
        "{% set s = s ~ s %}",
        "{% set s = s + s %}",
        "{% set s = s * N %}",
        "{{ s | indent(N) }}",
        "{% for i in range(N) %}",
        "{% endfor %}",
        "{{ s | replace('a', s) }}",
        "{{ ([s] * N) | join }}",
        "{{ s[::-1] }}",
        "{{ s | upper }}",
        "{% set l = l + l %}",
        "{% set l = l * N %}",
        "{{ l | join(s) }}",
        "{{ l | list | length }}",
        "{{ s | pprint }}",
        "{{ s | escape }}",
        "{{ l | batch(N, s) | list }}",
        "{{ l | chain(l) | join }}",
        "{% if s %}",
        "{% endif %}",
        "raw text ",
        "{{ s | title | capitalize | trim }}",
        "{{ SECRET }}",
    ];
    let renderer = Renderer::with_max_part_bytes(LIMIT);
    render(&renderer, "SECRET-OF-ANOTHER-APP").unwrap();
    let mut rng = StdRng::seed_from_u64(9);
    for _ in 0..1500 {
        let mut text = String::new();
        for _ in 0..rng.random_range(1..12) {
            let fragment = FRAGMENTS[rng.random_range(0..FRAGMENTS.len())];
            text.push_str(&fragment.replace('N', SIZES[rng.random_range(0..SIZES.len())]));
        }
        match render(&renderer, &text) {
            Ok(out) => {
                assert!(out.len() <= LIMIT, "{text}: {} bytes", out.len());
                assert!(!out.contains("SECRET-OF"), "{text}");
            }
            Err(TemplateError::Render { message, .. }) => {
                assert!(!message.contains("could not be rendered"), "{text} panicked");
            }
            Err(_) => {}
        }
    }
}
