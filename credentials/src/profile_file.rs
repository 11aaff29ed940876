//! Updating one profile of a shared credentials file (INI) as text, line by line, so every
//! other profile, comment and blank line stays byte for byte as it was.

const ID: &str = "aws_access_key_id";
const SECRET: &str = "aws_secret_access_key";
/// A token from an earlier source would be sent with the new key; it is dropped, under both
/// names botocore reads.
const TOKEN: &str = "aws_session_token";
const LEGACY_TOKEN: &str = "aws_security_token";

/// A value that would change the file's structure: a line break starts a line of its own (a
/// setting, or a `[section]` of someone else's choosing, e.g. one overriding `[default]`), and
/// `[` is refused too, since INI readers differ on where a header may start. The value itself
/// is never in the message: it may be the secret.
#[derive(Debug, thiserror::Error)]
#[error("the {what} contains a line break or '[', which could add lines or sections to the file")]
pub struct UnsafeValue {
    pub what: &'static str,
}

/// Refuses any of the three values `update` writes that `UnsafeValue` describes.
pub fn check(profile: &str, id: &str, secret: &str) -> Result<(), UnsafeValue> {
    for (what, value) in [
        ("profile name", profile),
        ("access key id", id),
        ("secret access key", secret),
    ] {
        if value.contains(['\n', '\r', '[']) {
            return Err(UnsafeValue { what });
        }
    }
    Ok(())
}

/// `text` with `[profile]` holding `id` and `secret`: existing values replaced in place (other
/// settings of the section kept), missing ones added after the header, the section appended if
/// absent.
pub fn update(text: &str, profile: &str, id: &str, secret: &str) -> Result<String, UnsafeValue> {
    check(profile, id, secret)?;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let Some(start) = lines
        .iter()
        .position(|line| section_name(line) == Some(profile))
    else {
        let mut out = text.to_owned();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("[{profile}]\n{ID} = {id}\n{SECRET} = {secret}\n"));
        return Ok(out);
    };
    let end = lines[start + 1..]
        .iter()
        .position(|line| section_name(line).is_some())
        .map_or(lines.len(), |offset| start + 1 + offset);
    let mut out = String::with_capacity(text.len() + 128);
    for line in &lines[..=start] {
        out.push_str(line);
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    let (mut wrote_id, mut wrote_secret) = (false, false);
    let mut body = String::new();
    for line in &lines[start + 1..end] {
        let newline = if line.ends_with('\n') { "\n" } else { "" };
        match setting_name(line).as_deref() {
            Some(ID) => {
                body.push_str(&format!("{ID} = {id}{newline}"));
                wrote_id = true;
            }
            Some(SECRET) => {
                body.push_str(&format!("{SECRET} = {secret}{newline}"));
                wrote_secret = true;
            }
            Some(TOKEN | LEGACY_TOKEN) => {}
            _ => body.push_str(line),
        }
    }
    if !wrote_id {
        out.push_str(&format!("{ID} = {id}\n"));
    }
    if !wrote_secret {
        out.push_str(&format!("{SECRET} = {secret}\n"));
    }
    out.push_str(&body);
    if end < lines.len() && !out.ends_with('\n') {
        out.push('\n');
    }
    for line in &lines[end..] {
        out.push_str(line);
    }
    Ok(out)
}

/// `Some("name")` for a `[name]` header line.
fn section_name(line: &str) -> Option<&str> {
    let trimmed = line.trim();
    trimmed
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .map(str::trim)
}

/// The lower-cased key of a `key = value` line; `None` for comments and blank lines.
fn setting_name(line: &str) -> Option<String> {
    let trimmed = line.trim_start();
    if trimmed.starts_with('#') || trimmed.starts_with(';') {
        return None;
    }
    trimmed
        .split_once('=')
        .map(|(name, _)| name.trim().to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# my credentials\n[default]\naws_access_key_id = AKIAOLDDEFAULT\naws_secret_access_key = olddefault\n\n; keyrot's\n[keyrot-alice]\n# keep me\naws_access_key_id=AKIAOLD\nregion = eu-west-1\naws_secret_access_key = old\naws_session_token = stale\n\n[other]\naws_access_key_id = AKIAOTHER\naws_secret_access_key = other";

    #[test]
    fn replaces_only_its_own_profile() {
        let updated = update(FILE, "keyrot-alice", "AKIANEW", "new").expect("safe");
        assert_eq!(
            updated,
            "# my credentials\n[default]\naws_access_key_id = AKIAOLDDEFAULT\naws_secret_access_key = olddefault\n\n; keyrot's\n[keyrot-alice]\n# keep me\naws_access_key_id = AKIANEW\nregion = eu-west-1\naws_secret_access_key = new\n\n[other]\naws_access_key_id = AKIAOTHER\naws_secret_access_key = other"
        );
        assert_eq!(
            update(&updated, "keyrot-alice", "AKIANEW", "new").expect("safe"),
            updated
        );
    }

    #[test]
    fn appends_a_missing_profile() {
        assert_eq!(
            update("[default]\nregion = x", "k", "A", "S").expect("safe"),
            "[default]\nregion = x\n\n[k]\naws_access_key_id = A\naws_secret_access_key = S\n"
        );
        assert_eq!(
            update("", "k", "A", "S").expect("safe"),
            "[k]\naws_access_key_id = A\naws_secret_access_key = S\n"
        );
    }

    #[test]
    fn fills_a_section_without_keys() {
        assert_eq!(
            update("[k]\nregion = x\n[z]\n", "k", "A", "S").expect("safe"),
            "[k]\naws_access_key_id = A\naws_secret_access_key = S\nregion = x\n[z]\n"
        );
        assert_eq!(
            update("[a]\n[k]", "k", "A", "S").expect("safe"),
            "[a]\n[k]\naws_access_key_id = A\naws_secret_access_key = S\n"
        );
    }

    #[test]
    fn a_legacy_security_token_is_dropped_too() {
        assert_eq!(
            update(
                "[k]\naws_security_token = stale\nregion = x\n",
                "k",
                "A",
                "S"
            )
            .expect("safe"),
            "[k]\naws_access_key_id = A\naws_secret_access_key = S\nregion = x\n"
        );
    }

    #[test]
    fn values_that_would_add_lines_or_sections_are_refused() {
        for (profile, id, secret, what) in [
            ("k\n[default]", "A", "S", "profile name"),
            ("[k", "A", "S", "profile name"),
            ("k", "A\raws_session_token = x", "S", "access key id"),
            (
                "k",
                "A",
                "S\n[default]\naws_access_key_id = EVIL",
                "secret access key",
            ),
        ] {
            let error = update("", profile, id, secret).expect_err("refused");
            assert_eq!(error.what, what);
            assert!(
                !error.to_string().contains("EVIL"),
                "no value in the message"
            );
        }
    }
}
