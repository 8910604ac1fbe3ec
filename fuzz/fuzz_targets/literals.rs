//! Instants, durations and amounts as text: what reads, writes back to text that reads as
//! the same; an instant stays in the years 0000 to 9999.
#![no_main]

libfuzzer_sys::fuzz_target!(|text: &str| {
    if let Some((seconds, nanos)) = flow_ir::time::parse_timestamp(text) {
        assert!(flow_ir::time::in_range(seconds));
        let written = flow_ir::time::format_timestamp(seconds, nanos);
        assert_eq!(flow_ir::time::parse_timestamp(&written), Some((seconds, nanos)), "{written}");
    }
    if let Some(seconds) = flow_ir::time::parse_duration(text) {
        let written = flow_ir::time::format_duration(seconds);
        assert_eq!(flow_ir::time::parse_duration(&written), Some(seconds), "{written}");
    }
    if let Some(money) = flow_ir::expr::Money::parse(text) {
        let written = money.to_string();
        assert_eq!(flow_ir::expr::Money::parse(&written), Some(money), "{written}");
    }
});
