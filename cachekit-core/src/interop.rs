//! Temporal values as the cachekit family stores them in interop mode.
//!
//! A datetime, a date or a time inside a cached value is written as a map
//! that every MessagePack reader can decode and that cachekit-py turns back
//! into `datetime`, `date` or `time`: `{"__datetime__": true, "value":
//! "2024-01-01T12:30:45.123456+00:00"}`, `{"__date__": true, "value":
//! "2024-01-01"}`, `{"__time__": true, "value": "12:30:45"}`. Use these
//! types as fields of a cached struct:
//!
//! ```
//! use cachekit::interop::DateTime;
//! use cachekit::keys::Timestamp;
//!
//! #[derive(serde::Serialize, serde::Deserialize, Clone)]
//! struct Order { id: u64, placed: DateTime }
//!
//! let placed = DateTime(Timestamp::parse_rfc3339("2024-01-01T12:30:45.123456Z")?);
//! assert_eq!(placed.to_string(), "2024-01-01T12:30:45.123456+00:00");
//! # Ok::<(), cachekit::Error>(())
//! ```
//!
//! As key *arguments* the family hashes a datetime as seconds since the
//! epoch instead: there, use [`Timestamp`] itself.

use std::fmt;

use serde::de::{Deserializer, Error as _};
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Iso8601;
use time::OffsetDateTime;

use crate::error::{Error, ErrorKind, Result};
use crate::keys::Timestamp;

const DATETIME: &str = "__datetime__";
const DATE: &str = "__date__";
const TIME: &str = "__time__";

/// An instant, stored as the family's `__datetime__` map. It is written in
/// UTC (`+00:00`), with microseconds when there are any (nanoseconds past
/// them are dropped: Python's `datetime` has none, and Python 3.10 reads
/// six digits at most); any UTC offset and up to nine digits are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DateTime(pub Timestamp);

/// A calendar date, stored as the family's `__date__` map (`YYYY-MM-DD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(time::Date);

/// A time of day without a date or offset, stored as the family's
/// `__time__` map (`HH:MM:SS`, then `.ffffff` when it has microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(time::Time);

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at =
            OffsetDateTime::from_unix_timestamp(self.0.unix_seconds()).map_err(|_| fmt::Error)?;
        write!(f, "{}T", Date(at.date()))?;
        write_clock(
            f,
            at.hour(),
            at.minute(),
            at.second(),
            self.0.subsec_nanos(),
        )?;
        f.write_str("+00:00")
    }
}

impl Date {
    /// The date `year-month-day`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a date that does not exist.
    pub fn new(year: i32, month: u8, day: u8) -> Result<Self> {
        let month = time::Month::try_from(month).map_err(invalid)?;
        time::Date::from_calendar_date(year, month, day)
            .map(Self)
            .map_err(invalid)
    }

    /// The year.
    pub fn year(self) -> i32 {
        self.0.year()
    }
    /// The month, 1 to 12.
    pub fn month(self) -> u8 {
        self.0.month().into()
    }
    /// The day of the month, from 1.
    pub fn day(self) -> u8 {
        self.0.day()
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}",
            self.year(),
            self.month(),
            self.day()
        )
    }
}

impl Time {
    /// The time `hour:minute:second.microsecond`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a field out of range.
    pub fn new(hour: u8, minute: u8, second: u8, microsecond: u32) -> Result<Self> {
        time::Time::from_hms_micro(hour, minute, second, microsecond)
            .map(Self)
            .map_err(invalid)
    }

    /// The hour, 0 to 23.
    pub fn hour(self) -> u8 {
        self.0.hour()
    }
    /// The minute, 0 to 59.
    pub fn minute(self) -> u8 {
        self.0.minute()
    }
    /// The second, 0 to 59.
    pub fn second(self) -> u8 {
        self.0.second()
    }
    /// The microseconds after the second.
    pub fn microsecond(self) -> u32 {
        self.0.microsecond()
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        write_clock(f, t.hour(), t.minute(), t.second(), t.nanosecond())
    }
}

/// `HH:MM:SS`, then `.ffffff` when there are microseconds in `nanos`.
fn write_clock(f: &mut fmt::Formatter<'_>, h: u8, m: u8, s: u8, nanos: u32) -> fmt::Result {
    write!(f, "{h:02}:{m:02}:{s:02}")?;
    match nanos / 1_000 {
        0 => Ok(()),
        micros => write!(f, ".{micros:06}"),
    }
}

fn invalid(err: impl fmt::Display) -> Error {
    Error::new(ErrorKind::InvalidInput, err.to_string())
}

/// Writes `{tag: true, "value": text}`.
fn sentinel<S: Serializer>(
    serializer: S,
    tag: &'static str,
    text: &str,
) -> std::result::Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_struct("Sentinel", 2)?;
    map.serialize_field(tag, &true)?;
    map.serialize_field("value", text)?;
    map.end()
}

/// Reads `{tag: true, "value": text}` and returns the text.
fn unsentinel<'de, D: Deserializer<'de>>(
    deserializer: D,
    tag: &str,
) -> std::result::Result<String, D::Error> {
    #[derive(Deserialize)]
    struct Sentinel {
        #[serde(rename = "__datetime__", default)]
        datetime: bool,
        #[serde(rename = "__date__", default)]
        date: bool,
        #[serde(rename = "__time__", default)]
        time: bool,
        value: String,
    }
    let s = Sentinel::deserialize(deserializer)?;
    let tagged = match tag {
        DATETIME => s.datetime,
        DATE => s.date,
        _ => s.time,
    };
    if tagged {
        Ok(s.value)
    } else {
        Err(D::Error::custom(format_args!(
            "expected a map with \"{tag}\": true"
        )))
    }
}

impl Serialize for DateTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        sentinel(serializer, DATETIME, &self.to_string())
    }
}

impl<'de> Deserialize<'de> for DateTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = unsentinel(deserializer, DATETIME)?;
        Timestamp::parse_rfc3339(&text)
            .map(Self)
            .map_err(D::Error::custom)
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        sentinel(serializer, DATE, &self.to_string())
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = unsentinel(deserializer, DATE)?;
        time::Date::parse(&text, &Iso8601::DATE)
            .map(Self)
            .map_err(|e| D::Error::custom(format_args!("invalid __date__ {text:?}: {e}")))
    }
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        sentinel(serializer, TIME, &self.to_string())
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = unsentinel(deserializer, TIME)?;
        time::Time::parse(&text, &Iso8601::TIME)
            .map(Self)
            .map_err(|e| D::Error::custom(format_args!("invalid __time__ {text:?}: {e}")))
    }
}

#[cfg(test)]
mod tests;
