//! Mechanisms added by other crates, registered by name: a downstream binary registers its
//! [`SaslMechanismFactory`] before it runs kafka-backup's command line, and configurations
//! then select it with `sasl_mechanism: NAME`, without a fork.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use super::{SaslError, SaslMechanism, shorten};
use crate::secret::Secret;

/// The configuration handed to a plugin: the shared credentials keys and the mechanism's own
/// options (`sasl_options:`), all of whose values are treated as secrets.
#[derive(Clone)]
pub struct PluginSettings {
    /// The name the configuration selected (`sasl_mechanism`), as registered.
    pub mechanism: &'static str,
    /// `sasl_username`, if set.
    pub username: Option<String>,
    /// `sasl_password`, if set.
    pub password: Option<Secret>,
    /// `sasl_options`: the plugin's own keys. Values print as `***`.
    pub options: BTreeMap<String, Secret>,
}

impl fmt::Debug for PluginSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginSettings")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl PluginSettings {
    /// A required option, or an error naming the key to set.
    pub fn required(&self, key: &str) -> Result<&Secret, SaslError> {
        self.options
            .get(key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                SaslError::Setup(format!(
                    "sasl_mechanism {} needs sasl_options.{key}; set it",
                    self.mechanism
                ))
            })
    }
}

/// Builds a mechanism from configuration. Called once per configuration load; the mechanism
/// it returns is then asked to [`start`](SaslMechanism::start) an exchange per connection,
/// with that connection's broker.
pub trait SaslMechanismFactory: Send + Sync {
    /// Checks the settings and builds the mechanism. Errors should name the key to fix.
    fn build(&self, settings: &PluginSettings) -> Result<Arc<dyn SaslMechanism>, SaslError>;

    /// The `sasl_options` keys this mechanism reads; any other key is a configuration error,
    /// so that a misspelt option is not silently ignored.
    fn option_keys(&self) -> &'static [&'static str];
}

type Registry = BTreeMap<&'static str, Arc<dyn SaslMechanismFactory>>;

static REGISTRY: RwLock<Registry> = RwLock::new(BTreeMap::new());

/// The built-in names, which a plugin may not take.
const BUILT_IN: [&str; 7] = [
    "PLAIN",
    "SCRAM-SHA-256",
    "SCRAM-SHA-512",
    "SCRAM-SHA256",
    "SCRAM-SHA512",
    "GSSAPI",
    "OAUTHBEARER",
];

/// Registers `factory` under `name`, which configurations then select with
/// `sasl_mechanism: NAME` (matched without regard to ASCII case). Names are upper-case
/// letters, digits, `-` and `_`; the built-in mechanisms' names and names already taken are
/// refused.
pub fn register_mechanism(
    name: &'static str,
    factory: Arc<dyn SaslMechanismFactory>,
) -> Result<(), SaslError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        return Err(SaslError::Setup(format!(
            "cannot register SASL mechanism `{}`: a name is 1 to 64 upper-case letters, digits, \
             `-` and `_`",
            shorten(name, 64)
        )));
    }
    if BUILT_IN.contains(&name) {
        return Err(SaslError::Setup(format!(
            "cannot register SASL mechanism {name}: it is built in"
        )));
    }
    let mut registry = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
    if registry.contains_key(name) {
        return Err(SaslError::Setup(format!(
            "cannot register SASL mechanism {name}: it is already registered"
        )));
    }
    registry.insert(name, factory);
    Ok(())
}

/// The factory registered under `name` (any ASCII case), with its registered name.
pub fn registered_mechanism(name: &str) -> Option<(&'static str, Arc<dyn SaslMechanismFactory>)> {
    let registry = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    registry
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name.trim()))
        .map(|(k, v)| (*k, Arc::clone(v)))
}

/// Every registered name, sorted.
pub fn registered_mechanisms() -> Vec<&'static str> {
    let registry = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
    registry.keys().copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::BrokerAddress;
    use crate::sasl::{SaslExchange, SaslStep};

    #[derive(Debug)]
    struct Echo(String);

    impl SaslMechanism for Echo {
        fn name(&self) -> &str {
            "ECHO"
        }
        fn principal(&self) -> Option<&str> {
            None
        }
        fn start(&self, broker: &BrokerAddress) -> Result<Box<dyn SaslExchange>, SaslError> {
            struct Once(Option<Vec<u8>>);
            impl SaslExchange for Once {
                fn step(&mut self, _: Option<&[u8]>) -> Result<SaslStep, SaslError> {
                    Ok(self.0.take().map_or(SaslStep::Done, SaslStep::Respond))
                }
            }
            Ok(Box::new(Once(Some(
                format!("{}@{}", self.0, broker.host).into_bytes(),
            ))))
        }
    }

    struct EchoFactory;

    impl SaslMechanismFactory for EchoFactory {
        fn build(&self, settings: &PluginSettings) -> Result<Arc<dyn SaslMechanism>, SaslError> {
            Ok(Arc::new(Echo(
                settings.required("word")?.expose().to_owned(),
            )))
        }
        fn option_keys(&self) -> &'static [&'static str] {
            &["word"]
        }
    }

    #[test]
    fn plugins_register_by_name_and_build_per_broker_exchanges() {
        register_mechanism("TEST-ECHO", Arc::new(EchoFactory)).unwrap();
        let e = register_mechanism("TEST-ECHO", Arc::new(EchoFactory)).unwrap_err();
        assert!(e.to_string().contains("already registered"), "{e}");
        for bad in ["SCRAM-SHA-512", "OAUTHBEARER", "lower", "", "WITH SPACE"] {
            assert!(
                register_mechanism(bad, Arc::new(EchoFactory)).is_err(),
                "{bad}"
            );
        }
        let (name, factory) = registered_mechanism("test-echo").unwrap();
        assert_eq!(name, "TEST-ECHO");
        assert!(registered_mechanisms().contains(&"TEST-ECHO"));
        let mut settings = PluginSettings {
            mechanism: name,
            username: None,
            password: None,
            options: BTreeMap::new(),
        };
        let e = factory.build(&settings).unwrap_err();
        assert!(e.to_string().contains("needs sasl_options.word"), "{e}");
        settings
            .options
            .insert("word".into(), Secret::new("very-secret-word"));
        assert!(!format!("{settings:?}").contains("very-secret-word"));
        let mechanism = factory.build(&settings).unwrap();
        let mut exchange = mechanism
            .start(&BrokerAddress::new("b-2.example", 9098))
            .unwrap();
        assert_eq!(
            exchange.step(None).unwrap(),
            SaslStep::Respond(b"very-secret-word@b-2.example".to_vec())
        );
    }
}
