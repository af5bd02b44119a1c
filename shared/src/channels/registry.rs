//! The registry: one line per channel (in `channels/mod.rs`) generates the types every
//! other module uses to reach channels, so none of them matches on channel names:
//! - `Channel`, with its name, queue, providers and test content;
//! - `Content`, one optional part per channel (`content.email`);
//! - `TemplateParts`, the same parts as templates (plus parts for channels to come);
//! - `Recipient`, a direct address per channel (`to[i].email`) or a user or group;
//! - `Address`, where one delivery goes.
//!
//! A line reads `Variant(name) => unit { content: Type, to: field: Type, address:
//! Variant }`: the content and target types are written out (they must be the unit's
//! own, which the compiler checks) because the OpenAPI derive names schemas by them.

use super::unit::JsonShape;
use serde::{Deserialize, Deserializer};

/// Reads an optional part: an object where the part is a struct, any JSON where it is
/// free-form.
pub fn part<'de, D: Deserializer<'de>, T: JsonShape>(d: D) -> Result<Option<T>, D::Error> {
    if T::OBJECT { crate::objects::optional_object(d) } else { Option::<T>::deserialize(d) }
}

/// A piece of content whose strings are templates.
pub trait TemplateText: Sized {
    /// The same value with every template string replaced by `render(path, source)`.
    fn map_text<E>(
        &self,
        path: &str,
        render: &mut dyn FnMut(&str, &str) -> Result<String, E>,
    ) -> Result<Self, E>;
}

macro_rules! channel_registry {
    ($(
        $(#[$doc:meta])*
        $variant:ident($name:ident) => $unit:ty {
            content: $content:ty,
            to: $to:ident: $target:ty,
            address: $address:ident $(,)?
        }
    ),+ $(,)?) => {
        /// A way of reaching a person. Each channel has its own send queue and providers.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Channel {
            $($(#[$doc])* $variant),+
        }

        impl Channel {
            pub const ALL: [Channel; [$(stringify!($variant)),+].len()] =
                [$(Channel::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Channel::$variant => stringify!($name)),+
                }
            }

            /// The name of the channel's send queue.
            pub fn queue_name(self) -> &'static str {
                match self {
                    $(Channel::$variant => concat!("send.", stringify!($name))),+
                }
            }

            /// The providers an integration on this channel may name.
            pub fn providers(self) -> &'static [crate::integrations::ProviderSpec] {
                match self {
                    $(Channel::$variant => <$unit as $crate::channels::ChannelUnit>::providers()),+
                }
            }

            /// Builds the provider an integration on this channel names.
            pub fn build_provider(
                self,
                host: &crate::channels::HostProviders,
                integration: &crate::integrations::Integration,
                secrets: &crate::integrations::SecretValues,
            ) -> Result<std::sync::Arc<dyn crate::channels::Provider>, String> {
                match self {
                    $(Channel::$variant => <$unit as crate::channels::ChannelUnit>::build(
                        host, integration, secrets,
                    )),+
                }
            }

            /// Whether a user's delivery on this channel carries a one-click
            /// unsubscribe link.
            pub fn one_click_unsubscribe(self) -> bool {
                match self {
                    $(Channel::$variant =>
                        <$unit as crate::channels::ChannelUnit>::ONE_CLICK_UNSUBSCRIBE),+
                }
            }

            /// What a test send carries when the request gives no content.
            pub fn test_content(self) -> Content {
                let mut content = Content::default();
                match self {
                    $(Channel::$variant => content.$name =
                        Some(<$unit as crate::channels::ChannelUnit>::test_content())),+
                }
                content
            }
        }

        impl std::fmt::Display for Channel {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for Channel {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Channel::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| {
                    let names: Vec<&str> = Channel::ALL.iter().map(|c| c.as_str()).collect();
                    format!("unknown channel '{s}' (expected one of {})", names.join(", "))
                })
            }
        }

        impl serde::Serialize for Channel {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for Channel {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let name = std::borrow::Cow::<'de, str>::deserialize(d)?;
                name.parse().map_err(serde::de::Error::custom)
            }
        }

        impl utoipa::PartialSchema for Channel {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some(Channel::ALL.map(Channel::as_str)))
                    .description(Some("A way of reaching a person."))
                    .into()
            }
        }

        impl utoipa::ToSchema for Channel {}

        /// What to say, per channel.
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct Content {
            $(
                #[serde(
                    deserialize_with = "crate::channels::registry::part",
                    default,
                    skip_serializing_if = "Option::is_none"
                )]
                pub $name: Option<$content>,
            )+
        }

        impl Content {
            pub fn has(&self, channel: Channel) -> bool {
                match channel {
                    $(Channel::$variant => self.$name.is_some()),+
                }
            }

            /// The channel's part as JSON (what the log provider records).
            pub fn json(&self, channel: Channel) -> serde_json::Value {
                match channel {
                    $(Channel::$variant => serde_json::to_value(&self.$name)),+
                }
                .unwrap_or_default()
            }

            /// Reports every part that breaks its channel's rules.
            pub fn validate(&self, report: crate::channels::Report<'_>) {
                $(
                    if let Some(part) = &self.$name {
                        <$unit as crate::channels::ChannelUnit>::validate(
                            part,
                            concat!("content.", stringify!($name)),
                            report,
                        );
                    }
                )+
            }
        }

        /// One locale variant of a template: what each channel gets. Every string is a
        /// minijinja template; in `webhook`, every string leaf of the JSON is.
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct TemplateParts {
            $(
                #[serde(
                    deserialize_with = "crate::channels::registry::part",
                    default,
                    skip_serializing_if = "Option::is_none"
                )]
                pub $name: Option<$content>,
            )+
            /// For the push channels to come; stored, not yet sent.
            #[serde(
                deserialize_with = "crate::objects::optional_object",
                default,
                skip_serializing_if = "Option::is_none"
            )]
            pub push: Option<crate::templates::PushParts>,
            /// For the chat channels to come; stored, not yet sent.
            #[serde(
                deserialize_with = "crate::objects::optional_object",
                default,
                skip_serializing_if = "Option::is_none"
            )]
            pub chat: Option<crate::templates::ChatParts>,
        }

        impl TemplateParts {
            /// The part one channel uses.
            pub fn only(self, channel: Channel) -> TemplateParts {
                let mut only = TemplateParts::default();
                match channel {
                    $(Channel::$variant => only.$name = self.$name),+
                }
                only
            }

            /// Each part from the first variant that has it; `used` gets the
            /// position of every variant a part came from.
            pub fn merge(variants: &[&TemplateParts], used: &mut Vec<usize>) -> TemplateParts {
                let mut pick = |has: &dyn Fn(&TemplateParts) -> bool| {
                    let found = variants.iter().position(|v| has(v))?;
                    if !used.contains(&found) {
                        used.push(found);
                    }
                    Some(variants[found])
                };
                TemplateParts {
                    $($name: pick(&|p| p.$name.is_some()).and_then(|p| p.$name.clone()),)+
                    push: pick(&|p| p.push.is_some()).and_then(|p| p.push.clone()),
                    chat: pick(&|p| p.chat.is_some()).and_then(|p| p.chat.clone()),
                }
            }

            /// The same parts with every template string replaced by
            /// `render(name, source)`; names are paths such as `email.html`.
            pub fn try_map<E>(
                &self,
                mut render: impl FnMut(&str, &str) -> Result<String, E>,
            ) -> Result<TemplateParts, E> {
                use crate::channels::TemplateText;
                Ok(TemplateParts {
                    $($name: self
                        .$name
                        .as_ref()
                        .map(|p| p.map_text(stringify!($name), &mut render))
                        .transpose()?,)+
                    push: self.push.as_ref().map(|p| p.map_text("push", &mut render)).transpose()?,
                    chat: self.chat.as_ref().map(|p| p.map_text("chat", &mut render)).transpose()?,
                })
            }

            /// Every template string, named by where it sits (`email.html`).
            pub fn sources(&self) -> Vec<(String, String)> {
                let mut out = Vec::new();
                let _ = self.try_map(|path, source| {
                    out.push((path.to_owned(), source.to_owned()));
                    Ok::<_, std::convert::Infallible>(source.to_owned())
                });
                out
            }

            /// Whether any part is given.
            pub fn is_empty(&self) -> bool {
                $(self.$name.is_none() &&)+ self.push.is_none() && self.chat.is_none()
            }
        }

        impl From<TemplateParts> for Content {
            /// The parts a notification carries (push and chat wait for their channels).
            fn from(parts: TemplateParts) -> Self {
                Content { $($name: parts.$name,)+ }
            }
        }

        /// Someone to notify: direct addresses (one per channel), one of the app's
        /// users, or every member of one of its groups.
        #[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct Recipient {
            $(
                #[serde(
                    deserialize_with = "crate::channels::registry::part",
                    default,
                    skip_serializing_if = "Option::is_none"
                )]
                pub $to: Option<$target>,
            )+
            /// One of the app's users: dispatch uses the identities in their profile.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub user_id: Option<String>,
            /// Every member of one of the app's groups.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub group: Option<String>,
        }

        impl Recipient {
            /// The recipient a user is: their identities, and their id (so a channel
            /// they have no identity for is suppressed with `no_address`).
            pub fn of_user(id: &str, profile: Option<&crate::domain::UserProfile>) -> Self {
                Recipient {
                    $($to: profile.and_then(
                        <$unit as crate::channels::ChannelUnit>::from_profile
                    ),)+
                    user_id: Some(id.to_owned()),
                    group: None,
                }
            }

            /// Whether any direct address is given.
            pub fn has_address(&self) -> bool {
                $(self.$to.is_some() ||)+ false
            }

            pub fn is_empty(&self) -> bool {
                !self.has_address() && !self.is_indirect()
            }

            /// A user or group, which dispatch resolves to addresses.
            pub fn is_indirect(&self) -> bool {
                self.user_id.is_some() || self.group.is_some()
            }

            pub fn address_for(&self, channel: Channel) -> Option<Address> {
                match channel {
                    $(Channel::$variant => self.$to.as_ref().map(|t| Address::$address(
                        <$unit as crate::channels::ChannelUnit>::address(t),
                    ))),+
                }
            }

            /// Reports direct addresses that break their channel's rules beyond
            /// their type; `path` is the recipient's (`to[0]`).
            pub fn check(&self, path: &str, report: crate::channels::Report<'_>) {
                $(
                    if let Some(target) = &self.$to {
                        <$unit as crate::channels::ChannelUnit>::check_target(
                            target,
                            &format!("{path}.{}", stringify!($to)),
                            report,
                        );
                    }
                )+
            }
        }

        /// Where one delivery goes.
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum Address {
            $(
                #[schema(value_type = String)]
                $address(<$unit as crate::channels::ChannelUnit>::Address),
            )+
            /// A user with no identity for the channel (the delivery is suppressed).
            User(String),
        }

        impl Address {
            /// A form safe for logs: never the full contact address.
            pub fn redacted(&self) -> String {
                match self {
                    $(Address::$address(a) =>
                        <$unit as crate::channels::ChannelUnit>::redact(a),)+
                    Address::User(id) => format!("user {id}"),
                }
            }

            /// The integration the address names (a chat group robot), if any.
            pub fn robot(&self) -> Option<&str> {
                match self {
                    $(Address::$address(a) =>
                        <$unit as crate::channels::ChannelUnit>::robot(a),)+
                    Address::User(_) => None,
                }
            }

            /// The channel the address is on (none for a user without one).
            pub fn channel(&self) -> Option<Channel> {
                match self {
                    $(Address::$address(_) => Some(Channel::$variant),)+
                    Address::User(_) => None,
                }
            }
        }
    };
}

pub(crate) use channel_registry;
