//! `--log FILE` and `--log-format text|json`: messages in runc's shapes (logrus):
//! `time="..." level=error msg="..."` or `{"level":"error","msg":"...","time":"..."}`.
//! Errors also go to stderr, as runc prints them.

use std::io::Write;
use std::path::PathBuf;

use crate::args::{Global, LogFormat};
use crate::state::now_rfc3339;

pub struct Log {
    file: Option<PathBuf>,
    format: LogFormat,
    debug: bool,
}

impl Log {
    pub fn new(g: &Global) -> Log {
        Log {
            file: g.log.clone(),
            format: g.log_format,
            debug: g.debug,
        }
    }

    pub fn format(&self, level: &str, msg: &str) -> String {
        let time = now_rfc3339();
        match self.format {
            LogFormat::Json => format!(
                "{}\n",
                serde_json::json!({"level": level, "msg": msg, "time": time})
            ),
            LogFormat::Text => format!("time={time:?} level={level} msg={msg:?}\n"),
        }
    }

    fn write(&self, level: &str, msg: &str) {
        if let Some(path) = &self.file {
            let line = self.format(level, msg);
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = f.write_all(line.as_bytes());
            }
        }
    }

    pub fn debug(&self, msg: impl FnOnce() -> String) {
        if self.debug {
            let msg = msg();
            self.write("debug", &msg);
            if self.file.is_none() {
                eprint!("{}", self.format("debug", &msg));
            }
        }
    }

    pub fn warn(&self, msg: &str) {
        self.write("warning", msg);
        eprintln!("barque-runtime: warning: {msg}");
    }

    pub fn error(&self, msg: &str) {
        self.write("error", msg);
        eprintln!("barque-runtime: {msg}");
    }
}
