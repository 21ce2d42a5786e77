use serde_json::Value;

use super::*;

fn vectors(section: &str) -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/interop-mode.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let all: Value = serde_json::from_str(&text).unwrap();
    all[section].as_array().unwrap().clone()
}

fn hex(v: &Value) -> Vec<u8> {
    let s = v.as_str().unwrap();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap()
}

#[test]
fn aad_matches_the_family_vectors() {
    let all = vectors("aad_vectors");
    assert!(!all.is_empty());
    for v in all {
        let got = aad(
            text(&v["tenant_id"]),
            text(&v["cache_key"]),
            text(&v["format"]),
            v["compressed"].as_bool().unwrap(),
        );
        assert_eq!(got, hex(&v["aad_hex"]), "{}", v["name"]);
    }
}

#[test]
fn encryption_matches_the_family_vectors_and_decrypts_them() {
    let all = vectors("encryption_vectors");
    assert!(!all.is_empty());
    for v in all {
        let key = TenantKey::derive(&hex(&v["master_key_hex"]), text(&v["tenant_id"])).unwrap();
        assert_eq!(
            key.fingerprint().to_vec(),
            hex(&v["derived_key_fingerprint_hex"])
        );
        let aad_bytes = hex(&v["aad_hex"]);
        assert_eq!(
            aad_bytes,
            aad(
                text(&v["tenant_id"]),
                text(&v["cache_key"]),
                text(&v["format"]),
                v["compressed"].as_bool().unwrap()
            )
        );
        let nonce: [u8; NONCE_LEN] = hex(&v["nonce_hex"]).try_into().unwrap();
        let plaintext = hex(&v["plaintext_hex"]);
        let sealed = key
            .encrypt_with_nonce(&plaintext, &aad_bytes, nonce)
            .unwrap();
        assert_eq!(sealed, hex(&v["ciphertext_hex"]), "{}", v["name"]);
        assert_eq!(key.decrypt(&sealed, &aad_bytes).unwrap(), plaintext);
    }
}

#[test]
fn a_value_bound_elsewhere_never_decrypts() {
    let master = [0x61_u8; 32];
    let key = TenantKey::derive(&master, "acme").unwrap();
    let bound = aad("acme", "users:get:1", "msgpack", false);
    let sealed = key.encrypt(b"secret value", &bound).unwrap();
    assert_eq!(key.decrypt(&sealed, &bound).unwrap(), b"secret value");
    // Another cache key, format, compression flag, tenant or master key.
    for other in [
        aad("acme", "users:get:2", "msgpack", false),
        aad("acme", "users:get:1", "json", false),
        aad("acme", "users:get:1", "msgpack", true),
    ] {
        assert!(key.decrypt(&sealed, &other).is_err());
    }
    let other_tenant = TenantKey::derive(&master, "globex").unwrap();
    assert!(other_tenant.decrypt(&sealed, &bound).is_err());
    let other_master = TenantKey::derive(&[0x62_u8; 32], "acme").unwrap();
    assert!(other_master.decrypt(&sealed, &bound).is_err());
    // Every flipped bit, and every truncation, fails.
    for i in 0..sealed.len() {
        let mut damaged = sealed.clone();
        damaged[i] ^= 1;
        assert!(key.decrypt(&damaged, &bound).is_err(), "bit flip at {i}");
        assert!(key.decrypt(&sealed[..i], &bound).is_err(), "cut at {i}");
    }
    // Two encryptions of one value differ (fresh nonces).
    assert_ne!(
        key.encrypt(b"v", &bound).unwrap(),
        key.encrypt(b"v", &bound).unwrap()
    );
}

#[test]
fn bad_keys_and_tenants_are_refused_without_showing_the_key() {
    let short = [0x5a_u8; 15];
    let err = TenantKey::derive(&short, "acme").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(!err.to_string().contains("5a5a"), "{err}");
    assert!(TenantKey::derive(&[1; 32], "").is_err());
    assert!(TenantKey::derive(&[1; 32], &"t".repeat(MAX_TENANT_LEN + 1)).is_err());
    assert!(TenantKey::derive(&[1; 32], &"t".repeat(70_000)).is_err());
    assert!(TenantKey::derive(&[1; 32], &"t".repeat(MAX_TENANT_LEN)).is_ok());
    let key = TenantKey::derive(&[0x5a_u8; 32], "acme").unwrap();
    let shown = format!("{key:?}");
    assert!(
        shown.contains("fingerprint") && !shown.contains("5a5a"),
        "{shown}"
    );
}
