//! The resource policy the fleet puts on every managed secret: only keyrot's functions (and
//! the break-glass principal) read the key, whatever broad read rights others hold.

use serde_json::json;

pub fn readers_only(readers: &[String]) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "OnlyKeyrotReads",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": "*",
            "Condition": {"StringNotEquals": {"aws:PrincipalArn": readers}},
        }],
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn denies_every_reader_but_the_listed_ones() {
        let policy: serde_json::Value =
            serde_json::from_str(&super::readers_only(&["arn:aws:iam::1:role/api".into()]))
                .unwrap();
        let statement = &policy["Statement"][0];
        assert_eq!(statement["Effect"], "Deny");
        assert_eq!(statement["Action"], "secretsmanager:GetSecretValue");
        assert_eq!(
            statement["Condition"]["StringNotEquals"]["aws:PrincipalArn"][0],
            "arn:aws:iam::1:role/api"
        );
    }
}
