//! The configuration table and NAT example of docs/reference-server.md
//! (moved there from the README) against the server:
//! * the table lists exactly the keys the configuration structure accepts
//!   (read from the deserializer itself, table by table);
//! * every default written as a TOML value is the real default: setting a
//!   key to it resolves to the same configuration as leaving it out;
//! * the NAT example is a valid configuration, and read-only for anonymous
//!   users (issue 21).

use std::{collections::BTreeSet, path::Path};

use ftpnat_server::config::{Config, RawConfig};

const README: &str = include_str!("../../docs/reference-server.md");

/// The rows of the table under "### Every configuration key":
/// (key, default column).
fn table() -> Vec<(String, String)> {
    let start = README
        .find("### Every configuration key")
        .expect("docs/reference-server.md has the configuration table");
    let section = &README[start..];
    let section = &section[..section[4..].find("\n#").map_or(section.len(), |i| i + 4)];
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cols: Vec<&str> = l.split(" | ").collect();
            let key = cols[0]
                .trim_start_matches("| ")
                .trim_matches('`')
                .to_string();
            (key, cols[1].trim().to_string())
        })
        .collect()
}

/// The field names in a deny-unknown-fields error ("expected one of `a`, `b`").
fn expected_fields(err: &str) -> Option<Vec<String>> {
    let rest = &err[err.find("unknown field `zz_probe`")?..];
    let rest = &rest[rest.find("expected")?..];
    Some(
        rest.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect(),
    )
}

fn probe(text: &str) -> Option<Vec<String>> {
    let err = toml::from_str::<RawConfig>(text).err()?.to_string();
    expected_fields(&err)
}

/// Every key the configuration accepts, tables as `table.key`.
fn struct_keys() -> BTreeSet<String> {
    let top = probe("zz_probe = 1").expect("RawConfig denies unknown fields");
    let mut keys = BTreeSet::new();
    for k in top {
        let sub = probe(&format!("[{k}]\nzz_probe = 1"))
            .or_else(|| probe(&format!("[[{k}]]\nzz_probe = 1")));
        match sub {
            Some(fields) => keys.extend(fields.into_iter().map(|f| format!("{k}.{f}"))),
            None => {
                keys.insert(k);
            }
        }
    }
    keys
}

#[test]
fn the_table_lists_exactly_the_keys_the_server_accepts() {
    let documented: BTreeSet<String> = table().into_iter().map(|(k, _)| k).collect();
    let accepted = struct_keys();
    assert!(accepted.len() >= 40, "{accepted:?}");
    let missing: Vec<_> = accepted.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&accepted).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "README table: keys missing {missing:?}, keys the server does not have {unknown:?}"
    );
}

/// The configuration `text` resolves to, as TOML (for comparison).
fn resolved(root: &Path, text: &str) -> String {
    let no_dns = |_: &str| -> std::io::Result<Vec<std::net::IpAddr>> {
        Err(std::io::Error::other("no DNS in tests"))
    };
    let text = format!("root = \"{}\"\n{text}", root.display());
    let c = Config::from_toml(&text, Path::new("docs.toml"), &no_dns)
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    toml::to_string(&c).unwrap()
}

#[test]
fn every_documented_default_is_the_real_default() {
    let dir = tempfile::tempdir().unwrap();
    let base = resolved(dir.path(), "");
    let mut checked = 0;
    for (key, default) in table() {
        let Some(value) = default.strip_prefix('`').and_then(|d| d.strip_suffix('`')) else {
            continue;
        };
        let setting = match key.split_once('.') {
            Some((table, k)) => format!("[{table}]\n{k} = {value}\n"),
            None => format!("{key} = {value}\n"),
        };
        assert_eq!(
            resolved(dir.path(), &setting),
            base,
            "README says {key} defaults to {value}"
        );
        checked += 1;
    }
    assert!(checked >= 29, "only {checked} defaults checked");
}

#[test]
fn the_nat_example_is_valid_and_read_only_for_anonymous_users() {
    let start = README.find("## The reference server behind a NAT").unwrap();
    let block = &README[start..];
    let block = &block[block.find("```toml\n").unwrap() + 8..];
    let block = &block[..block.find("```").unwrap()];
    assert!(block.contains("anonymous_upload = false"), "{block}");
    assert!(block.contains("run_as = \"ftp\""), "{block}");
    let dir = tempfile::tempdir().unwrap();
    // This machine may have no `ftp` account; the keys are what is checked.
    let text = block
        .replace(
            "root = \"/srv/ftp\"",
            &format!("root = \"{}\"", dir.path().display()),
        )
        .replace("run_as = \"ftp\"", "run_as = \"nobody\"");
    let c = Config::from_toml(&text, Path::new("docs/reference-server.md"), &|_| {
        Err(std::io::Error::other("no DNS"))
    })
    .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(c.anonymous && !c.anonymous_upload);
    assert_eq!(c.run_as.as_deref(), Some("nobody"));
    assert_eq!(c.masquerade.ip(), Some("203.0.113.1".parse().unwrap()));
    let after = &README[start..];
    assert!(
        after.contains("This example is **read-only for anonymous users**"),
        "the README says so"
    );
}
