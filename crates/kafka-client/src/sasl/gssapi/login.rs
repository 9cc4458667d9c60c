//! Logging in from a keytab into a private in-memory credential cache (MIT's
//! `gss_acquire_cred_from`, which the safe crate does not wrap), and the one krb5.conf per
//! process that MIT allows.

// The mechanism's imports and items: this file is a part of it, split out by job.
use super::*;

/// Brokers' service names are one principal component: `kafka`, not `kafka/host`.
pub(super) fn check_service_name(service_name: &str) -> Result<(), SaslError> {
    if service_name.is_empty() {
        return Err(SaslError::Setup(
            "sasl_kerberos_service_name is empty; set it to the first part of the brokers' \
             Kerberos principals (usually `kafka`, for kafka/HOST@REALM)"
                .to_owned(),
        ));
    }
    if service_name.contains(['/', '@', '\0']) || service_name.chars().any(char::is_whitespace) {
        return Err(SaslError::Setup(format!(
            "sasl_kerberos_service_name `{}` must be only the first part of the brokers' \
             principals (e.g. `kafka` for kafka/HOST@REALM), without `/`, `@` or spaces",
            shorten(service_name, 64)
        )));
    }
    Ok(())
}

pub(super) fn check_principal(principal: &str) -> Result<(), SaslError> {
    if principal.is_empty() || principal.contains('\0') {
        return Err(SaslError::Setup(
            "sasl_kerberos_principal is empty or contains NUL; set it to a principal such as \
             backup@EXAMPLE.COM, or leave it unset to use the keytab's first principal"
                .to_owned(),
        ));
    }
    Ok(())
}

/// Opens the keytab ourselves first, so a missing or unreadable file is reported with the
/// operating system's reason instead of Kerberos' "no credentials".
pub(super) fn check_keytab(path: &Path) -> Result<(), SaslError> {
    if path.as_os_str().is_empty() {
        return Err(SaslError::Setup(
            "sasl_keytab_path is empty; set it to the keytab of the client principal".to_owned(),
        ));
    }
    let mut header = [0u8; 2];
    let read = File::open(path).and_then(|mut f| f.read_exact(&mut header));
    match read {
        // MIT keytab files start with version 0x0501 or 0x0502.
        Ok(()) if header[0] == 0x05 && (header[1] == 0x01 || header[1] == 0x02) => Ok(()),
        Ok(()) => Err(SaslError::Setup(format!(
            "keytab {} is not a Kerberos keytab file (export one with `ktadd -k` or `ktutil`)",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(SaslError::Setup(format!(
            "keytab {} is empty: export the client principal's keys into it with `ktadd -k`",
            path.display()
        ))),
        Err(e) => Err(SaslError::Setup(format!(
            "cannot read keytab {} ({e}): check sasl_keytab_path and that this user may read it",
            path.display()
        ))),
    }
}

/// The process's krb5.conf setting: MIT has one configuration per process in practice.
pub(super) struct Krb5ConfigState {
    /// The path set through [`set_krb5_config`], if any.
    pub(super) path: Option<PathBuf>,
    /// Whether Kerberos was used with the configuration as it was (so changing it now would
    /// give two mechanisms different realms' settings half-way).
    pub(super) used: bool,
}

pub(super) static KRB5_CONFIG: Mutex<Krb5ConfigState> = Mutex::new(Krb5ConfigState {
    path: None,
    used: false,
});

/// Points MIT Kerberos at `path` for the whole process, by setting `KRB5_CONFIG`.
///
/// MIT has no way to give GSSAPI a configuration file other than this variable, so one
/// krb5.conf per process is supported: calling again with the same path is fine, a different
/// path (or a path after a mechanism already used the default configuration) is an error.
///
/// Setting an environment variable is only safe while no other thread reads the environment
/// through the C library. [`Gssapi::new`] calls this before its first Kerberos call; a
/// program should call it early, before starting threads (an async runtime), when it can.
pub fn set_krb5_config(path: &Path) -> Result<(), SaslError> {
    let mut state = KRB5_CONFIG.lock().unwrap_or_else(|e| e.into_inner());
    match &state.path {
        Some(current) if current == path => return Ok(()),
        Some(current) => {
            return Err(SaslError::Setup(format!(
                "sasl_krb5_config_path {} differs from {}, already in use in this process; \
                 MIT Kerberos reads one krb5.conf per process, so every GSSAPI connection must \
                 use the same file",
                path.display(),
                current.display()
            )));
        }
        None if state.used => {
            return Err(SaslError::Setup(format!(
                "sasl_krb5_config_path {} was given after Kerberos was already used with {} in \
                 this process; MIT Kerberos reads one krb5.conf per process, so set it for \
                 every GSSAPI connection or for none",
                path.display(),
                krb5_config_description_of(None)
            )));
        }
        None => {}
    }
    if let Err(e) = File::open(path) {
        return Err(SaslError::Setup(format!(
            "cannot read the krb5.conf {} ({e}): check sasl_krb5_config_path",
            path.display()
        )));
    }
    // SAFETY: environment writes race with C code reading the environment on other threads.
    // This runs before this process's first Kerberos call (checked above under the lock), so
    // krb5 itself is not reading it; std's own readers take the same lock as `set_var`. The
    // remaining risk, another library calling getenv at this instant, is why the function
    // documents that it should be called early, before threads are started.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("KRB5_CONFIG", path);
    }
    state.path = Some(path.to_owned());
    state.used = true;
    Ok(())
}

/// Which krb5.conf is in effect, for messages.
pub(super) fn krb5_config_description() -> String {
    let state = KRB5_CONFIG.lock().unwrap_or_else(|e| e.into_inner());
    krb5_config_description_of(state.path.as_deref())
}

pub(super) fn krb5_config_description_of(path: Option<&Path>) -> String {
    match path {
        Some(path) => format!("sasl_krb5_config_path {}", path.display()),
        None => match std::env::var_os("KRB5_CONFIG") {
            Some(value) => format!("KRB5_CONFIG={}", Path::new(&value).display()),
            None => "the default /etc/krb5.conf".to_owned(),
        },
    }
}

/// A credential in its own in-memory cache. Fields drop in order: the credential is released
/// first, then the cache is destroyed (MIT keeps MEMORY caches, tickets and session keys
/// included, until they are destroyed).
pub(super) struct MemoryCache {
    pub(super) cred: Cred,
    pub(super) principal: String,
    pub(super) _ccache: CacheDestroyer,
}

/// Destroys the named cache when dropped.
pub(super) struct CacheDestroyer(CString);

impl Drop for CacheDestroyer {
    fn drop(&mut self) {
        krb5::destroy_ccache(&self.0);
    }
}

/// Distinguishes the caches of one process; with the pid and a random part, names never
/// collide with another cache in the process (MEMORY caches are per process).
pub(super) static NEXT_CACHE: AtomicU64 = AtomicU64::new(0);

impl MemoryCache {
    pub(super) fn login(keytab: &Path, principal: Option<&str>) -> Result<Self, SaslError> {
        let keytab_c = CString::new(keytab.as_os_str().as_bytes()).map_err(|_| {
            SaslError::Setup(format!(
                "sasl_keytab_path {} contains a NUL byte",
                keytab.display()
            ))
        })?;
        // Made before the login, so a cache a failed login left behind is destroyed too.
        let ccache = CacheDestroyer(
            CString::new(format!(
                "MEMORY:kafka-backup-{}-{}-{:016x}",
                std::process::id(),
                NEXT_CACHE.fetch_add(1, Ordering::Relaxed),
                rand::random::<u64>()
            ))
            .expect("no NUL in a formatted cache name"),
        );
        let subject = Subject {
            principal,
            keytab: Some(keytab),
            service: None,
        };
        let cred = acquire_from_keytab(principal, &keytab_c, &ccache.0)
            .map_err(|e| explain(Stage::Login, &e, &subject))?;
        // The principal the library chose (the keytab's first one when none was named),
        // for reports and as the authorization identity.
        let name = cred
            .name()
            .map_err(|e| explain(Stage::Login, &e, &subject))?;
        Ok(MemoryCache {
            cred,
            principal: name.to_string(),
            _ccache: ccache,
        })
    }
}

/// Frees a GSSAPI name this module imported.
pub(super) struct ImportedName(sys::gss_name_t);

impl Drop for ImportedName {
    fn drop(&mut self) {
        if !self.0.is_null() {
            let mut minor: sys::OM_uint32 = 0;
            // SAFETY: the name came from gss_import_name and is released once.
            #[allow(unsafe_code)]
            unsafe {
                sys::gss_release_name(&mut minor, &mut self.0);
            }
        }
    }
}

/// `gss_acquire_cred_from` with the cred store `client_keytab` = `keytab`, `ccache` =
/// `ccache`, for `principal` (or, when `None`, the keytab's first principal), Kerberos only.
/// The safe crate does not wrap this MIT extension, hence the raw call.
#[allow(unsafe_code)]
pub(super) fn acquire_from_keytab(
    principal: Option<&str>,
    keytab: &CStr,
    ccache: &CStr,
) -> Result<Cred, GssError> {
    let failed = |major: u32, minor: u32| GssError {
        major: MajorFlags::from_bits_retain(major),
        minor,
    };
    let mut minor: sys::OM_uint32 = 0;
    let mut name = ImportedName(ptr::null_mut());
    if let Some(principal) = principal {
        let mut name_oid = sys::gss_OID_desc {
            length: KRB5_PRINCIPAL_NAME_OID.len() as sys::OM_uint32,
            elements: KRB5_PRINCIPAL_NAME_OID.as_ptr() as *mut c_void,
        };
        let mut buffer = sys::gss_buffer_desc {
            length: principal.len(),
            value: principal.as_ptr() as *mut c_void,
        };
        // SAFETY: every pointer is valid for the call; gss_import_name copies the buffer
        // and does not keep the OID, and the output name is owned by `name`.
        let major =
            unsafe { sys::gss_import_name(&mut minor, &mut buffer, &mut name_oid, &mut name.0) };
        if major != sys::GSS_S_COMPLETE {
            return Err(failed(major, minor));
        }
    }
    let mut mech_oid = sys::gss_OID_desc {
        length: KRB5_MECH_OID.len() as sys::OM_uint32,
        elements: KRB5_MECH_OID.as_ptr() as *mut c_void,
    };
    let mut mechs = sys::gss_OID_set_desc {
        count: 1,
        elements: &mut mech_oid,
    };
    let mut elements = [
        sys::gss_key_value_element_desc {
            key: c"client_keytab".as_ptr(),
            value: keytab.as_ptr(),
        },
        sys::gss_key_value_element_desc {
            key: c"ccache".as_ptr(),
            value: ccache.as_ptr(),
        },
    ];
    let store = sys::gss_key_value_set_desc {
        count: elements.len() as sys::OM_uint32,
        elements: elements.as_mut_ptr(),
    };
    let mut cred: sys::gss_cred_id_t = ptr::null_mut();
    // SAFETY: all inputs outlive the call and MIT copies what it keeps (the store's strings
    // are resolved into its own keytab and ccache handles); the output credential is handed
    // to `Cred`, which releases it exactly once.
    let major = unsafe {
        sys::gss_acquire_cred_from(
            &mut minor,
            name.0,
            sys::_GSS_C_INDEFINITE,
            &mut mechs,
            sys::GSS_C_INITIATE as sys::gss_cred_usage_t,
            &store,
            &mut cred,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    if major != sys::GSS_S_COMPLETE {
        return Err(failed(major, minor));
    }
    // SAFETY: `cred` is a fresh credential from gss_acquire_cred_from, owned by nobody else.
    Ok(unsafe { Cred::from_c(cred) })
}

/// The three krb5 calls needed to destroy a MEMORY cache, which GSSAPI has no call for.
#[allow(unsafe_code)]
mod krb5 {
    use super::{CStr, c_char, c_int, c_void, ptr};

    type Krb5Context = *mut c_void;
    type Krb5Ccache = *mut c_void;

    #[link(name = "krb5")]
    unsafe extern "C" {
        fn krb5_init_context(context: *mut Krb5Context) -> c_int;
        fn krb5_free_context(context: Krb5Context);
        fn krb5_cc_resolve(
            context: Krb5Context,
            name: *const c_char,
            cache: *mut Krb5Ccache,
        ) -> c_int;
        fn krb5_cc_destroy(context: Krb5Context, cache: Krb5Ccache) -> c_int;
    }

    /// Destroys the named cache; failures are ignored (the cache may already be gone, and
    /// nothing else can be done from a destructor).
    pub(super) fn destroy_ccache(name: &CStr) {
        let mut context: Krb5Context = ptr::null_mut();
        // SAFETY: standard krb5 usage: a context of our own, a cache handle resolved from a
        // NUL-terminated name and consumed by krb5_cc_destroy, then the context freed.
        unsafe {
            if krb5_init_context(&mut context) != 0 {
                return;
            }
            let mut cache: Krb5Ccache = ptr::null_mut();
            if krb5_cc_resolve(context, name.as_ptr(), &mut cache) == 0 {
                krb5_cc_destroy(context, cache);
            }
            krb5_free_context(context);
        }
    }
}
