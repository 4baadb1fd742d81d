//! Discovery: what an endpoint says it serves.

use super::*;

#[test]
fn discovery_lists_services_and_handlers() {
    let d = endpoint().discover();
    assert_eq!(d.services.len(), 1);
    let names: Vec<_> = d.services[0]
        .handlers
        .iter()
        .map(|h| h.name.as_str().to_owned())
        .collect();
    assert_eq!(
        names,
        [
            "approval",
            "fail",
            "fan_out",
            "flaky",
            "nap",
            "three",
            "two_timers"
        ]
    );
}
