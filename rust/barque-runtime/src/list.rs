//! `list`: runc's table (Go's tabwriter: minimum width 12, padding 3) or `--format json`.

use crate::args::Global;
use crate::error::RuntimeError;
use crate::state::{self, Record, Status};

pub fn rows(g: &Global) -> Result<Vec<(Record, Status)>, RuntimeError> {
    let mut out = Vec::new();
    for dir in state::list(&g.root)? {
        // A container deleted meanwhile is skipped.
        if let Ok(r) = dir.current() {
            out.push(r);
        }
    }
    Ok(out)
}

pub fn table(rows: &[(Record, Status)], quiet: bool) -> String {
    if quiet {
        return rows.iter().map(|(r, _)| format!("{}\n", r.id)).collect();
    }
    let mut lines: Vec<[String; 6]> = vec![[
        "ID".into(),
        "PID".into(),
        "STATUS".into(),
        "BUNDLE".into(),
        "CREATED".into(),
        "OWNER".into(),
    ]];
    for (r, s) in rows {
        let pid = if *s == Status::Stopped { 0 } else { r.pid };
        lines.push([
            r.id.clone(),
            pid.to_string(),
            s.as_str().into(),
            r.bundle.display().to_string(),
            r.created.clone(),
            r.owner.clone(),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].len() + 3)
                .max()
                .unwrap_or(0)
                .max(12)
        })
        .collect();
    let mut out = String::new();
    for l in &lines {
        for (i, cell) in l.iter().enumerate() {
            if i == 5 {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}", w = widths[i]));
            }
        }
        out.push('\n');
    }
    out
}

pub fn json(rows: &[(Record, Status)]) -> String {
    let v: Vec<_> = rows.iter().map(|(r, s)| state::oci_state(r, *s)).collect();
    serde_json::Value::Array(v).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_line_up() {
        let r = Record {
            id: "a-rather-long-container-id".into(),
            pid: 7,
            start_time: 1,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2024-01-01T00:00:00Z".into(),
            owner: "root".into(),
            annotations: Default::default(),
            cgroups: vec![],
            started: true,
            hooks: None,
        };
        let t = table(&[(r.clone(), Status::Stopped)], false);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0].find("PID"), lines[1].find(" 0 ").map(|i| i + 1));
        assert!(lines[1].contains("stopped"));
        assert_eq!(
            table(&[(r.clone(), Status::Running)], true),
            "a-rather-long-container-id\n"
        );
        let j: serde_json::Value = serde_json::from_str(&json(&[(r, Status::Running)])).unwrap();
        assert_eq!(j[0]["pid"], 7);
    }
}
