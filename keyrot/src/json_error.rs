//! JSON error descriptions safe to log.

/// Describes a JSON error without echoing the input: `serde_json` quotes offending values
/// in some messages, and an input may be secret material.
pub fn describe_json_error(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let message = error.to_string();
    match error.classify() {
        Category::Data if message.starts_with("missing field") => message,
        Category::Data => format!(
            "a field has the wrong type (line {}, column {})",
            error.line(),
            error.column()
        ),
        Category::Syntax | Category::Eof => format!(
            "not valid JSON (line {}, column {})",
            error.line(),
            error.column()
        ),
        Category::Io => "could not be read".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_never_quote_the_input() {
        let error = serde_json::from_str::<std::collections::HashMap<String, u32>>(
            r#"{"a": "wJalrXUtnFEMI"}"#,
        )
        .unwrap_err();
        assert!(!describe_json_error(&error).contains("wJalr"));
    }
}
