//! Which locale variant of a template a recipient gets: the most specific one there
//! is, dropping subtags from the right (`zh-Hant-TW` → `zh-Hant` → `zh`), then the
//! template's default.

/// The name of the variant every template has.
pub const DEFAULT_LOCALE: &str = "default";

/// The variants to try for `locale`, most specific first, `default` last. Matching is
/// case-insensitive (BCP 47 tags are), so the chain is lowercased.
pub fn fallback_chain(locale: Option<&str>) -> Vec<String> {
    let mut chain = Vec::new();
    if let Some(locale) = locale.map(|l| l.trim().replace('_', "-").to_ascii_lowercase()) {
        let mut tag = locale.as_str();
        while !tag.is_empty() {
            chain.push(tag.to_owned());
            tag = tag.rfind('-').map_or("", |cut| &tag[..cut]);
        }
    }
    chain.push(DEFAULT_LOCALE.to_owned());
    chain
}

/// The first of `available` (variant names, any case) in `locale`'s fallback chain.
pub fn pick<'a, I>(locale: Option<&str>, available: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str> + Clone,
{
    fallback_chain(locale).into_iter().find_map(|wanted| {
        available.clone().into_iter().find(|name| name.eq_ignore_ascii_case(&wanted))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_drops_subtags_from_the_right() {
        assert_eq!(fallback_chain(Some("zh-Hant-TW")), ["zh-hant-tw", "zh-hant", "zh", "default"]);
        assert_eq!(fallback_chain(Some("en_GB")), ["en-gb", "en", "default"]);
        assert_eq!(fallback_chain(None), ["default"]);
    }

    #[test]
    fn the_most_specific_variant_wins() {
        let variants = ["default", "zh", "zh-Hant"];
        assert_eq!(pick(Some("zh-Hant-TW"), variants), Some("zh-Hant"));
        assert_eq!(pick(Some("zh-Hans-CN"), variants), Some("zh"));
        assert_eq!(pick(Some("fr-CA"), variants), Some("default"));
        assert_eq!(pick(Some("fr"), ["fr-CA"]), None, "no default, no match");
    }
}
