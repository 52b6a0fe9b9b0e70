//! How the binary shows [`snapsync::progress`]: on a terminal, indicatif bars (bytes or
//! items, rate, ETA) with every log line and printed result written above them, never through
//! them; elsewhere, one `progress` log line every `--progress-secs`; with `--no-progress`,
//! nothing.

use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use snapsync::progress::{Sink, Task, Unit};

/// The bars on the terminal, when there are any: what writes to it goes through [`suspend`].
static BARS: OnceLock<MultiProgress> = OnceLock::new();

/// How progress is shown: bars on a terminal, log lines every `every` off one, or not at all.
pub fn install(on_terminal: bool, enabled: bool, every: Duration) {
    if !enabled {
        return;
    }
    if on_terminal {
        let bars =
            BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        snapsync::progress::install(Box::new(Bars(bars.clone())));
    } else {
        snapsync::progress::install(Box::new(LogLines { every }));
    }
}

/// Runs `f` (a write to the terminal) with the bars cleared, then draws them again below.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    match BARS.get() {
        Some(bars) => bars.suspend(f),
        None => f(),
    }
}

/// stderr for the log: each event written above the bars.
pub struct AboveBars {
    /// tracing-logfmt quotes a value with `str::escape_debug`, which also escapes `'`
    /// (`store\'s`): logfmt needs only `"` and `\\` escaped, so `\'` is written back as `'`.
    /// (An escaped `'` always follows an even run of backslashes, so this never eats one.)
    pub logfmt: bool,
}

impl Write for AboveBars {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let fixed;
        let bytes = match std::str::from_utf8(buf) {
            Ok(text) if self.logfmt && text.contains("\\'") => {
                fixed = text.replace("\\'", "'");
                fixed.as_bytes()
            }
            _ => buf,
        };
        suspend(|| std::io::stderr().write_all(bytes))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

struct Bars(MultiProgress);

impl Sink for Bars {
    fn start(
        &self,
        label: String,
        total: Option<u64>,
        unit: Unit,
        show_after: Duration,
    ) -> Box<dyn Task> {
        let (pos, rate) = match unit {
            Unit::Bytes => ("{bytes}/{total_bytes}", "{bytes_per_sec}"),
            _ => ("{pos}/{len}", "{per_sec}"),
        };
        let template = match total {
            Some(_) => format!(
                "{{spinner}} {{prefix}} [{{bar:30}}] {pos} {} ({rate}, {{elapsed}}, eta {{eta}}) {{msg}}",
                if unit == Unit::Bytes { "" } else { unit.as_str() }
            ),
            None => format!("{{spinner}} {{prefix}} {pos} ({rate}, {{elapsed}})")
                .replace("/{total_bytes}", "")
                .replace("/{len}", ""),
        };
        let bar = ProgressBar::hidden();
        if let Some(n) = total {
            bar.set_length(n);
        }
        bar.set_style(
            ProgressStyle::with_template(&template)
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(label);
        let task = BarTask {
            bars: self.0.clone(),
            bar,
            started: Instant::now(),
            show_after,
            shown: Mutex::new(false),
        };
        task.show_if_due();
        Box::new(task)
    }
}

struct BarTask {
    bars: MultiProgress,
    bar: ProgressBar,
    started: Instant,
    show_after: Duration,
    shown: Mutex<bool>,
}

impl BarTask {
    fn show_if_due(&self) {
        let mut shown = self.shown.lock().expect("not poisoned");
        if !*shown && self.started.elapsed() >= self.show_after {
            *shown = true;
            let bar = self.bars.add(self.bar.clone());
            bar.enable_steady_tick(Duration::from_millis(200));
        }
    }
}

impl Task for BarTask {
    fn inc(&self, n: u64) {
        self.bar.inc(n);
        self.show_if_due();
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
        self.bars.remove(&self.bar);
    }
}

struct LogLines {
    every: Duration,
}

impl Sink for LogLines {
    fn start(&self, label: String, total: Option<u64>, unit: Unit, _: Duration) -> Box<dyn Task> {
        let now = Instant::now();
        Box::new(LogTask {
            label,
            total,
            unit,
            every: self.every,
            started: now,
            state: Mutex::new((0, now)),
        })
    }
}

struct LogTask {
    label: String,
    total: Option<u64>,
    unit: Unit,
    every: Duration,
    started: Instant,
    /// Done so far, and when the last line was logged.
    state: Mutex<(u64, Instant)>,
}

impl Task for LogTask {
    fn inc(&self, n: u64) {
        let mut state = self.state.lock().expect("not poisoned");
        state.0 += n;
        if state.1.elapsed() < self.every {
            return;
        }
        state.1 = Instant::now();
        let done = state.0;
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = done as f64 / secs;
        let eta_s = self
            .total
            .filter(|_| rate > 0.0)
            .map(|t| (t.saturating_sub(done) as f64 / rate).round() as u64);
        tracing::info!(
            task = %self.label,
            done,
            total = self.total,
            unit = self.unit.as_str(),
            per_s = (rate * 10.0).round() / 10.0,
            eta_s,
            "progress"
        );
    }
    fn finish(&self) {}
}
