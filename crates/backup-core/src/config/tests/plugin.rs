//! A SASL mechanism registered by another crate: selected by name, given only the options it
//! reads, their values kept secret.

use std::sync::{Arc, Once};

use kafka_client::BrokerAddress;
use kafka_client::sasl::{
    PluginSettings, SaslError, SaslExchange, SaslMechanism, SaslMechanismFactory,
    register_mechanism,
};

use super::*;
use crate::config::{SaslCredentials, SaslMechanismName};

const TOKEN: &str = "Plugin-Option-Secret-2718";

#[derive(Debug)]
struct Token;

impl SaslMechanism for Token {
    fn name(&self) -> &str {
        "TEST-TOKEN"
    }
    fn principal(&self) -> Option<&str> {
        None
    }
    fn start(&self, _: &BrokerAddress) -> Result<Box<dyn SaslExchange>, SaslError> {
        Err(SaslError::Setup("not for connecting".into()))
    }
}

struct TokenFactory;

impl SaslMechanismFactory for TokenFactory {
    fn build(&self, settings: &PluginSettings) -> Result<Arc<dyn SaslMechanism>, SaslError> {
        settings.required("token")?;
        Ok(Arc::new(Token))
    }
    fn option_keys(&self) -> &'static [&'static str] {
        &["token", "audience"]
    }
}

fn registered() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| register_mechanism("TEST-TOKEN", Arc::new(TokenFactory)).unwrap());
}

fn plugin(extra: &str) -> String {
    with_security(&format!(
        "    security_protocol: SASL_SSL\n    sasl_mechanism: test-token\n{extra}"
    ))
}

#[test]
fn a_registered_mechanism_is_selected_by_name_with_its_options_secret() {
    registered();
    let loaded = ok(
        &plugin("    sasl_options:\n      token: ${TOKEN}\n      audience: kafka\n"),
        &[("TOKEN", TOKEN)],
    );
    let sasl = loaded.cluster.security.sasl.as_ref().unwrap();
    assert_eq!(sasl.mechanism, SaslMechanismName::Plugin("TEST-TOKEN"));
    let SaslCredentials::Plugin(settings) = &sasl.credentials else {
        panic!("{sasl:?}")
    };
    assert_eq!(settings.options["token"].expose(), TOKEN);
    let shown = format!("{loaded:?} {loaded} {:?}", loaded.warnings);
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(sasl.mechanism().is_ok());
    // Without the option the factory names it.
    let loaded = ok(&plugin("    sasl_options:\n      audience: kafka\n"), &[]);
    let e = loaded
        .cluster
        .security
        .sasl
        .unwrap()
        .mechanism()
        .unwrap_err();
    assert!(e.to_string().contains("needs sasl_options.token"), "{e}");
}

#[test]
fn options_the_mechanism_does_not_read_and_keys_of_other_mechanisms_are_errors() {
    registered();
    assert_message(
        &err(&plugin("    sasl_options:\n      tokn: x\n"), &[]),
        &[
            "`source.security.sasl_options.tokn` (line 9): is not an option of sasl_mechanism TEST-TOKEN; it takes token, audience",
        ],
    );
    assert_message(
        &err(&plugin("    sasl_keytab_path: /etc/krb5.keytab\n"), &[]),
        &["`source.security.sasl_keytab_path` (line 8): is not used by sasl_mechanism TEST-TOKEN"],
    );
    assert_message(
        &err(
            &with_security(
                "    security_protocol: SASL_SSL\n    sasl_mechanism: SCRAM-SHA-512\n    sasl_username: u\n    \
                 sasl_password: p\n    sasl_options:\n      token: x\n",
            ),
            &[],
        ),
        &[
            "`source.security.sasl_options` (line 11): is only used with a SASL mechanism registered by a plugin",
        ],
    );
    // A name nobody registered is still an unknown value.
    let e = err(
        &with_security("    security_protocol: SASL_SSL\n    sasl_mechanism: NOT-REGISTERED\n"),
        &[],
    );
    assert!(e.to_string().contains("NOT-REGISTERED"), "{e}");
}

#[test]
fn option_values_are_scrubbed_from_errors_even_when_parsing_stops_early() {
    registered();
    // The secret pasted into another key by mistake: the error about that key must not
    // show it, although parsing stopped before reaching sasl_options.
    let yaml = with_security(&format!(
        "    security_protocol: {TOKEN}\n    sasl_mechanism: test-token\n    sasl_options:\n      token: {TOKEN}\n"
    ));
    let e = err(&yaml, &[]);
    assert!(!e.to_string().contains(TOKEN), "{e}");
    assert!(e.to_string().contains("security_protocol"), "{e}");
}
