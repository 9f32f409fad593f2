//! Percent-encoding as Alibaba Cloud signatures define it, and decoding of what clients send.
//!
//! Signing (V1 and V3) encodes names and values per RFC 3986: `A-Z a-z 0-9 - _ . ~` stay, every
//! other UTF-8 byte becomes `%XX` with uppercase hex (space is `%20`, `*` is `%2A`, `/` is `%2F`).
//! On the wire, official clients send query strings with spaces as `+`
//! (Python `urllib.parse.urlencode`), so a server decodes `application/x-www-form-urlencoded`
//! first and re-encodes for the signature. Source: `shared/docs/alibaba-cloud-protocol.md`,
//! Python `alibabacloud_tea_openapi.utils.get_rpcsignature` / `get_canonical_query_string`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Bytes left alone by RFC 3986 encoding: alphanumerics plus `-`, `_`, `.`, `~`.
const RFC3986_UNRESERVED_COMPLEMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes `input` per RFC 3986 with uppercase hex, as both signature versions require.
///
/// `"my secret*~/x"` becomes `"my%20secret%2A~%2Fx"`; non-ASCII characters are encoded byte by
/// byte from their UTF-8 form (`"é"` becomes `"%C3%A9"`).
pub fn percent_encode(input: &str) -> String {
    utf8_percent_encode(input, RFC3986_UNRESERVED_COMPLEMENT).to_string()
}

/// Encodes `(name, value)` pairs as a query string (`a=1&b=x%20y`), in the given order, each part
/// RFC 3986-encoded. Used for the wire form of requests kmsync sends.
pub fn encode_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (name, value) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&percent_encode(name));
        out.push('=');
        out.push_str(&percent_encode(value));
    }
    out
}

/// Decodes a query string or form body the way servers do: `+` is a space, `%XX` is a byte,
/// invalid UTF-8 is replaced with U+FFFD. Pairs keep their order; a name without `=` gets an
/// empty value.
pub fn decode_form(input: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(input).into_owned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreserved_characters_stay_and_everything_else_is_encoded_uppercase() {
        assert_eq!(percent_encode("AZaz09-_.~"), "AZaz09-_.~");
        assert_eq!(percent_encode("my secret*~/x"), "my%20secret%2A~%2Fx");
        assert_eq!(percent_encode("a+b=c&d"), "a%2Bb%3Dc%26d");
        assert_eq!(
            percent_encode("2016-02-23T12:46:24Z"),
            "2016-02-23T12%3A46%3A24Z"
        );
        assert_eq!(percent_encode(""), "");
    }

    #[test]
    fn non_ascii_is_encoded_from_its_utf8_bytes() {
        assert_eq!(percent_encode("é"), "%C3%A9");
        assert_eq!(percent_encode("密钥"), "%E5%AF%86%E9%92%A5");
    }

    #[test]
    fn form_decoding_turns_plus_into_space_and_keeps_empty_values() {
        let pairs = decode_form(b"SecretName=my+secret%2A~%2Fx&SignatureType=&Token=a%2Bb&Flag");
        assert_eq!(
            pairs,
            vec![
                ("SecretName".to_owned(), "my secret*~/x".to_owned()),
                ("SignatureType".to_owned(), String::new()),
                ("Token".to_owned(), "a+b".to_owned()),
                ("Flag".to_owned(), String::new()),
            ]
        );
    }

    #[test]
    fn encoded_pairs_round_trip_through_form_decoding() {
        let wire = encode_pairs([("Name", "a b+c/é*"), ("Empty", "")]);
        assert_eq!(wire, "Name=a%20b%2Bc%2F%C3%A9%2A&Empty=");
        assert_eq!(
            decode_form(wire.as_bytes()),
            vec![
                ("Name".into(), "a b+c/é*".into()),
                ("Empty".into(), String::new())
            ]
        );
    }
}
