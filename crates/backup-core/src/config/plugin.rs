//! Checks of the settings of a SASL mechanism registered by a downstream crate: its own
//! options (`sasl_options:`) must be ones it reads, and keys of the built-in mechanisms
//! would be ignored, so they are errors.

use std::collections::BTreeMap;

use kafka_client::sasl::PluginSettings;

use super::env::{ConfigSecret, ConfigString};
use super::error::ConfigError;
use super::kerberos::RawKerberos;
use super::model::{SaslCredentials, SaslMechanismName, SaslSettings};
use super::oauth::RawOAuth;
use super::validator::Validator;

impl Validator<'_> {
    /// Validates a registered mechanism's settings.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn plugin(
        &mut self,
        sec: &str,
        name: &'static str,
        username: Option<ConfigString>,
        password: Option<ConfigSecret>,
        options: Option<BTreeMap<String, ConfigSecret>>,
        kerberos: &RawKerberos,
        oauth: &RawOAuth,
    ) -> Result<SaslSettings, ConfigError> {
        self.refuse_set_keys(
            sec,
            kerberos.keys().into_iter().chain(oauth.keys()),
            &format!(
                "is not used by sasl_mechanism {name}; remove it (a registered mechanism takes its \
                 own settings in sasl_options)"
            ),
        )?;
        let (_, factory) = kafka_client::sasl::registered_mechanism(name)
            .expect("a Plugin keyword is only made for a registered name");
        let known = factory.option_keys();
        let options = options.unwrap_or_default();
        if let Some((key, value)) = options.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            let offered = if known.is_empty() {
                "it takes none".to_owned()
            } else {
                format!("it takes {}", known.join(", "))
            };
            return Err(self.invalid(
                format!("{sec}.sasl_options.{key}"),
                value.line,
                format!("is not an option of sasl_mechanism {name}; {offered}"),
            ));
        }
        let username = username
            .map(|u| u.value.trim().to_owned())
            .filter(|u| !u.is_empty());
        let settings = PluginSettings {
            mechanism: name,
            username: username.clone(),
            password: password.map(|p| p.value),
            options: options.into_iter().map(|(k, v)| (k, v.value)).collect(),
        };
        Ok(SaslSettings {
            mechanism: SaslMechanismName::Plugin(name),
            username: username.unwrap_or_else(|| format!("the {name} identity")),
            credentials: SaslCredentials::Plugin(settings),
        })
    }
}
