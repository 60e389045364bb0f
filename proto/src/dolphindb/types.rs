//! DolphinDB's type and form codes: the two bytes that start every object on the wire.
//!
//! The codes are the ones the official clients use (`DT_*` and `DF_*` in their settings);
//! names are the ones DolphinDB users know, so that a refusal can say which type it refused.

use xrepl_core::value::DataType;

pub const VOID: u8 = 0;
pub const BOOL: u8 = 1;
pub const CHAR: u8 = 2;
pub const SHORT: u8 = 3;
pub const INT: u8 = 4;
pub const LONG: u8 = 5;
pub const DATE: u8 = 6;
pub const DATETIME: u8 = 11;
pub const TIMESTAMP: u8 = 12;
pub const NANOTIMESTAMP: u8 = 14;
pub const FLOAT: u8 = 15;
pub const DOUBLE: u8 = 16;
pub const SYMBOL: u8 = 17;
pub const STRING: u8 = 18;
pub const ANY: u8 = 25;
/// A vector compressed by the client (a table's column when `compress=True` and the column
/// has a compression method).
pub const COMPRESS: u8 = 26;
/// A SYMBOL vector carrying its symbol base (128 + SYMBOL).
pub const SYMBOL_BASE: u8 = 128 + SYMBOL;
/// The table kind byte of a table whose columns may be compressed (`compress=True`).
pub const TABLE_COMPRESSED: u8 = 8;

pub const FORM_SCALAR: u8 = 0;
pub const FORM_VECTOR: u8 = 1;
pub const FORM_PAIR: u8 = 2;
pub const FORM_MATRIX: u8 = 3;
pub const FORM_SET: u8 = 4;
pub const FORM_DICTIONARY: u8 = 5;
pub const FORM_TABLE: u8 = 6;

/// Names of the type codes 0..=40, in order (`None` for codes DolphinDB does not use).
const NAMES: [Option<&str>; 41] = [
    Some("VOID"),
    Some("BOOL"),
    Some("CHAR"),
    Some("SHORT"),
    Some("INT"),
    Some("LONG"),
    Some("DATE"),
    Some("MONTH"),
    Some("TIME"),
    Some("MINUTE"),
    Some("SECOND"),
    Some("DATETIME"),
    Some("TIMESTAMP"),
    Some("NANOTIME"),
    Some("NANOTIMESTAMP"),
    Some("FLOAT"),
    Some("DOUBLE"),
    Some("SYMBOL"),
    Some("STRING"),
    Some("UUID"),
    Some("FUNCTIONDEF"),
    Some("HANDLE"),
    Some("CODE"),
    Some("DATASOURCE"),
    Some("RESOURCE"),
    Some("ANY"),
    Some("COMPRESS"),
    Some("ANY DICTIONARY"),
    Some("DATEHOUR"),
    Some("DATEMINUTE"),
    Some("IPADDR"),
    Some("INT128"),
    Some("BLOB"),
    Some("DECIMAL"),
    Some("COMPLEX"),
    Some("POINT"),
    Some("DURATION"),
    Some("DECIMAL32"),
    Some("DECIMAL64"),
    Some("DECIMAL128"),
    Some("OBJECT"),
];

/// A type code as users know it, with the code: `TIME (8)`, `INT[] (68)` for an array vector,
/// `SYMBOL (145)` for a symbol vector with its base, `type 99` for a code nobody uses.
pub fn type_name(code: u8) -> String {
    let base = |c: u8| NAMES.get(usize::from(c)).copied().flatten();
    match code {
        SYMBOL_BASE => format!("SYMBOL ({code})"),
        64..=127 => match base(code - 64) {
            Some(n) => format!("{n}[] ({code})"),
            None => format!("type {code}"),
        },
        _ => match base(code) {
            Some(n) => format!("{n} ({code})"),
            None => format!("type {code}"),
        },
    }
}

/// A form code's name, for refusals: `matrix`, `chart`, `form 12`.
pub fn form_name(code: u8) -> String {
    match code {
        FORM_SCALAR => "scalar".into(),
        FORM_VECTOR => "vector".into(),
        FORM_PAIR => "pair".into(),
        FORM_MATRIX => "matrix".into(),
        FORM_SET => "set".into(),
        FORM_DICTIONARY => "dictionary".into(),
        FORM_TABLE => "table".into(),
        7 => "chart".into(),
        8 => "chunk".into(),
        9 => "system object".into(),
        _ => format!("form {code}"),
    }
}

/// The DolphinDB type code of an xrepl type.
pub fn code_of(t: DataType) -> u8 {
    match t {
        DataType::Bool => BOOL,
        DataType::Int => INT,
        DataType::Long => LONG,
        DataType::Double => DOUBLE,
        DataType::String => STRING,
        DataType::Symbol => SYMBOL,
        DataType::Date => DATE,
        DataType::DateTime => DATETIME,
        DataType::Timestamp => TIMESTAMP,
        DataType::NanoTimestamp => NANOTIMESTAMP,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_code() {
        assert_eq!(type_name(8), "TIME (8)");
        assert_eq!(type_name(VOID), "VOID (0)");
        assert_eq!(type_name(39), "DECIMAL128 (39)");
        assert_eq!(type_name(68), "INT[] (68)");
        assert_eq!(type_name(SYMBOL_BASE), "SYMBOL (145)");
        assert_eq!(type_name(41), "type 41");
        assert_eq!(type_name(200), "type 200");
        assert_eq!(form_name(3), "matrix");
        assert_eq!(form_name(42), "form 42");
    }

    #[test]
    fn codes_of_xrepl_types_name_the_same_type() {
        for t in DataType::ALL {
            assert_eq!(
                type_name(code_of(t)),
                format!("{} ({})", t.name(), code_of(t))
            );
        }
    }
}
