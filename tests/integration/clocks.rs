//! Clocks that disagree (issue 14, item 8): a version once dated in the future (a clock that ran
//! ahead, here a replayed file dated 2999) makes every later version come 1 ms after it. The
//! run that publishes after it and `restore --at now` both say so, in one warning line each.

use crate::common::cli::Sandbox;
use crate::common::history::small;
use crate::common::http::HttpServer;

#[test]
fn a_history_dated_in_the_future_is_warned_about() {
    let sb = Sandbox::new();
    let days = sb.path().join("days");
    std::fs::create_dir(&days).unwrap();
    std::fs::write(days.join("2999-01-01.json"), small(4, 1)).unwrap();
    let r = sb.run(&["replay", days.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");

    let server = HttpServer::start();
    server.set("/d.json", small(4, 2));
    let r = sb.sync(&server.url("/d.json"), &[]);
    assert_eq!((r.code, r.outcome()), (0, "changed"), "{r:?}");
    let warned: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("the clock is behind the newest version"))
        .collect();
    assert_eq!(warned.len(), 1, "{r:?}");
    assert!(warned[0].contains("2999-01-01T00:00:00"), "{r:?}");
    let m = sb.manifest("covid-countries");
    assert_eq!(m["versions"][1]["created_at"], "2999-01-01T00:00:00.001Z");

    // `--at now` finds no version: both are dated after now, and it says why.
    let out = sb.path().join("now.json");
    let r = sb.run(&["restore", "--at", "now", "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("the newest version is dated in the future"),
        "{r:?}"
    );
    let r = sb.run(&[
        "restore",
        "--at",
        "3000-01-01",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
}
