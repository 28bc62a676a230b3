//! What a scenario file may ask of the machine that runs it. Scenario files
//! come from pull requests and run as root in CI: every name that ends up in
//! a path, a namespace or a command line, every size and every bound is
//! checked here at load time (so `ftpnat check` refuses what `ftpnat run`
//! would trip on), with the limits documented in `docs/scenario-format.md`.

/// Largest scenario file read (bytes).
pub const MAX_SCENARIO_BYTES: u64 = 1 << 20;
/// Largest rule set a scenario may load (bytes).
pub const MAX_RULESET_BYTES: u64 = 1 << 20;
/// Largest generated file (`files = { x = { size = N } }`).
pub const MAX_FILE_SIZE: u64 = 1 << 30;
/// Largest total of a scenario's files.
pub const MAX_FILES_TOTAL: u64 = 4 << 30;
/// Most files in one scenario.
pub const MAX_FILES: usize = 10_000;
/// Largest `stor` upload (held in memory by the built-in client).
pub const MAX_UPLOAD: u64 = 256 << 20;
/// Most gateways.
pub const MAX_GATEWAYS: usize = 16;
/// Most hosts.
pub const MAX_HOSTS: usize = 64;
/// Most steps, counting those inside `parallel`.
pub const MAX_STEPS: usize = 10_000;
/// Longest whole-scenario bound (`timeout_s`).
pub const MAX_TIMEOUT_S: u64 = 3600;
/// Longest per-step bound and `within_ms`/`at_least_ms` (ms).
pub const MAX_STEP_MS: u64 = 600_000;
/// Longest host or gateway name (it names namespaces, containers, files).
pub const MAX_NODE_NAME: usize = 32;
/// Longest scenario name (it names the artifacts folder).
pub const MAX_SCENARIO_NAME: usize = 128;

/// A host or gateway name: it names a network namespace, a container and
/// artifact files, so letters, digits, `-` and `_`, starting with a letter
/// or digit, at most [`MAX_NODE_NAME`]; `seg<N>` is taken by the switches
/// ftpnat adds.
pub fn node_name(n: &str) -> Result<(), String> {
    let ok = !n.is_empty()
        && n.len() <= MAX_NODE_NAME
        && n.as_bytes()[0].is_ascii_alphanumeric()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        return Err(format!(
            "name {n:?}: a host or gateway name is 1-{MAX_NODE_NAME} letters, digits, '-' or '_', starting with a letter or digit (it names a network namespace and files)"
        ));
    }
    if n.strip_prefix("seg")
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!(
            "name {n:?} is reserved for the switches ftpnat adds (seg0, seg1, …)"
        ));
    }
    Ok(())
}

/// A scenario name: it names the artifacts folder and filters, so letters,
/// digits, `-`, `_` and `.`, starting with a letter or digit.
pub fn scenario_name(n: &str) -> Result<(), String> {
    let ok = !n.is_empty()
        && n.len() <= MAX_SCENARIO_NAME
        && n.as_bytes()[0].is_ascii_alphanumeric()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(format!("scenario name {n:?}: 1-{MAX_SCENARIO_NAME} letters, digits, '-', '_' or '.', starting with a letter or digit (it names the artifacts folder)"))
    }
}

/// A local Docker image reference (`name[:tag]` or `name@sha256:…`), as
/// `docker` accepts it: lower-case path components, no option-like leading
/// `-`, no `..`.
pub fn image_ref(r: &str) -> Result<(), String> {
    let (path, _) = r.split_once('@').unwrap_or((r, ""));
    let (path, tag) = match path.rsplit_once(':') {
        // A colon before the last slash is a registry port, not a tag.
        Some((p, t)) if !t.contains('/') => (p, t),
        _ => (path, ""),
    };
    let comp_ok = |c: &str| {
        !c.is_empty()
            && c.as_bytes()[0].is_ascii_alphanumeric()
            && c.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'.' | b'_' | b'-' | b':')
            })
            && !c.contains("..")
    };
    let tag_ok = tag.is_empty()
        || (tag.len() <= 128
            && tag.as_bytes()[0] != b'-'
            && tag.as_bytes()[0] != b'.'
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')));
    if r.len() <= 255 && path.split('/').all(comp_ok) && tag_ok {
        Ok(())
    } else {
        Err(format!(
            "image {r:?} is not a Docker image reference like \"ftpnat/server:latest\""
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names() {
        for good in ["gw", "server", "curl-lab", "h_1", "A1", "segment", "seg"] {
            assert!(node_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "../x",
            "a/b",
            "-gw",
            "a b",
            "seg0",
            "seg12",
            ".",
            "ä",
            &"x".repeat(33),
        ] {
            assert!(node_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scenario_names() {
        assert!(scenario_name("rfc2428-epsv-all").is_ok());
        assert!(scenario_name("v1.2_x").is_ok());
        for bad in ["", "..", ".", "../../tmp/x", "a/b", " x", "-x"] {
            assert!(scenario_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn image_refs() {
        for good in [
            "ftpnat/server:latest",
            "ftpnat-test/router:1",
            "localhost:5000/x/y:v1.0",
            "alpine",
            "x@sha256:abcdef",
        ] {
            assert!(image_ref(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-x",
            "--privileged",
            "Upper/case",
            "a/../b",
            "x:-t",
            "a//b",
            "x y",
        ] {
            assert!(image_ref(bad).is_err(), "{bad}");
        }
    }
}
