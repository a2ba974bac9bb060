//! The app's logger as a foreign trait: the core's `tracing` events, already free of personal data,
//! go to Logcat or os_log through it.

use std::sync::Arc;

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

/// Severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum LogLevel {
    /// Errors.
    Error,
    /// Warnings.
    Warn,
    /// Information.
    Info,
    /// Debugging.
    Debug,
}

/// Implemented by the app: receives the core's log lines.
#[uniffi::export(with_foreign)]
pub trait Logger: Send + Sync {
    /// One event: its level, where it comes from, and its message with its fields.
    fn log(&self, level: LogLevel, target: String, message: String);
}

struct Forward(Arc<dyn Logger>);

#[derive(Default)]
struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        if field.name() == "message" {
            self.0.push_str(&format!("{value:?}"));
        } else {
            self.0.push_str(&format!("{}={value:?}", field.name()));
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Forward {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let level = match *meta.level() {
            tracing::Level::ERROR => LogLevel::Error,
            tracing::Level::WARN => LogLevel::Warn,
            tracing::Level::INFO => LogLevel::Info,
            _ => LogLevel::Debug,
        };
        let mut line = Line::default();
        event.record(&mut line);
        self.0.log(level, meta.target().to_owned(), line.0);
    }
}

/// Sends the core's log events at `min` and above to `logger`. Only the first call takes effect
/// (a process has one global subscriber); later calls return false.
#[uniffi::export]
pub fn set_logger(logger: Arc<dyn Logger>, min: LogLevel) -> bool {
    let max = match min {
        LogLevel::Error => tracing::level_filters::LevelFilter::ERROR,
        LogLevel::Warn => tracing::level_filters::LevelFilter::WARN,
        LogLevel::Info => tracing::level_filters::LevelFilter::INFO,
        LogLevel::Debug => tracing::level_filters::LevelFilter::DEBUG,
    };
    let subscriber = tracing_subscriber::registry()
        .with(max)
        .with(Forward(logger));
    tracing::subscriber::set_global_default(subscriber).is_ok()
}
