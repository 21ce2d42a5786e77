use super::*;
use crate::keys::canonical_value;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_datetime_encodes_as_the_shared_sentinel_vector() {
    // `datetime_sentinel_value` in the shared interop-mode vectors.
    let at = DateTime(Timestamp::parse_rfc3339("2024-01-01T12:30:45.123456+00:00").unwrap());
    assert_eq!(
        hex(&canonical_value(&at).unwrap()),
        "82ac5f5f6461746574696d655f5fc3a576616c7565d920323032342d30312d30315431323a33303a34352e3132333435362b30303a3030"
    );
}

#[test]
fn datetimes_are_written_in_utc_the_way_python_isoformat_writes_them() {
    let cases = [
        ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05+00:00"),
        ("2024-01-02T08:34:05+05:30", "2024-01-02T03:04:05+00:00"),
        (
            "2024-01-01T00:00:00.000005Z",
            "2024-01-01T00:00:00.000005+00:00",
        ),
        (
            "2024-01-01T00:00:00.123456789Z",
            "2024-01-01T00:00:00.123456+00:00",
        ),
        (
            "2024-01-01T00:00:00.000000999Z",
            "2024-01-01T00:00:00+00:00",
        ),
        ("1969-12-31T23:59:59.5Z", "1969-12-31T23:59:59.500000+00:00"),
    ];
    for (input, written) in cases {
        let at = DateTime(Timestamp::parse_rfc3339(input).unwrap());
        assert_eq!(at.to_string(), written, "{input}");
    }
}

#[test]
fn temporal_values_round_trip_through_messagepack() {
    let at = DateTime(Timestamp::parse_rfc3339("2024-02-29T23:59:59.999999-08:00").unwrap());
    let date = Date::new(2024, 2, 29).unwrap();
    let time = Time::new(7, 8, 9, 10).unwrap();
    let doc = canonical_value(&(at, date, time)).unwrap();
    let back: (DateTime, Date, Time) = rmp_serde::from_slice(&doc).unwrap();
    assert_eq!(back, (at, date, time));
    assert_eq!(date.to_string(), "2024-02-29");
    assert_eq!(time.to_string(), "07:08:09.000010");
    assert_eq!(Time::new(7, 8, 9, 0).unwrap().to_string(), "07:08:09");
}

#[test]
fn a_sentinel_with_another_tag_or_a_bad_text_does_not_decode() {
    #[derive(Serialize)]
    struct Raw<'a> {
        #[serde(rename = "__date__")]
        date: bool,
        value: &'a str,
    }
    let date_map = canonical_value(&Raw {
        date: true,
        value: "2024-01-01",
    })
    .unwrap();
    assert!(rmp_serde::from_slice::<DateTime>(&date_map).is_err());
    assert!(rmp_serde::from_slice::<Date>(&date_map).is_ok());
    let bad = canonical_value(&Raw {
        date: true,
        value: "2024-02-30",
    })
    .unwrap();
    assert!(rmp_serde::from_slice::<Date>(&bad).is_err());
    let naive =
        canonical_value(&serde_json::json!({"__datetime__": true, "value": "2024-01-01T00:00:00"}))
            .unwrap();
    assert!(
        rmp_serde::from_slice::<DateTime>(&naive).is_err(),
        "a datetime without an offset names no instant"
    );
}

#[test]
fn impossible_dates_and_times_are_refused() {
    assert!(Date::new(2023, 2, 29).is_err());
    assert!(Date::new(2024, 13, 1).is_err());
    assert!(Time::new(24, 0, 0, 0).is_err());
    assert!(Time::new(0, 0, 0, 1_000_000).is_err());
}
