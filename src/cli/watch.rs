//! `berth get TYPE [NAME] -w`: what is there as one table, then a row for every change
//! as it happens, as kubectl prints a watch. Reads the server's watch stream
//! (`?watch=true`, one JSON event per line, see `api::watch`) until Ctrl-C or until the
//! server closes it (it stopped).

use std::io::{self, Write};

use anyhow::bail;
use serde_json::Value;

use super::output::{print_document, str_at, Columns, Format};
use super::resource::{server_error_line, Resource, Targets};
use super::{tables, GlobalOptions, Reported};
use crate::api::client::{ApiError, Client};
use crate::api::http::percent_encode;
use crate::api::watch::INITIAL_EVENTS_END;

pub fn run(
    global: &GlobalOptions,
    client: &Client,
    targets: &Targets,
    format: Format,
    watch_only: bool,
    show_kind: bool,
) -> anyhow::Result<()> {
    let [(resource, names)] = targets.by_type.as_slice() else {
        bail!(
            "watch is only supported on individual resources and resource collections, but {} resource types were given",
            targets.by_type.len()
        );
    };
    if names.len() > 1 {
        bail!(
            "watch is only supported on individual resources and resource collections, but {} resources were found",
            names.len()
        );
    }
    let name = names.first().map(String::as_str);
    if let Some(name) = name {
        // A missing object is an error, as in kubectl, not an empty watch.
        if let Err(err) =
            client.request("GET", &resource.object_path(global.namespace(), name), None)
        {
            eprintln!("{}", server_error_line(&err));
            return Err(Reported.into());
        }
    }
    let namespace = (!global.all_namespaces).then(|| global.namespace());
    let mut path = format!(
        "{}?watch=true&allowWatchBookmarks=true&sendInitialEvents=true",
        resource.collection_path(namespace)
    );
    if let Some(selector) = global.selector.as_deref().filter(|s| !s.is_empty()) {
        path.push_str(&format!("&labelSelector={}", percent_encode(selector)));
    }
    let printer = Printer {
        resource: *resource,
        name: name.map(str::to_owned),
        format,
        with_namespace: global.all_namespaces,
        show_kind,
        watch_only,
        initial: Some(Vec::new()),
        columns: None,
        documents: 0,
        error: None,
    };
    let mut sink = EventLines {
        pending: Vec::new(),
        printer,
    };
    match client.request_raw("GET", &path, None, &mut sink) {
        Ok(_) => Ok(()),
        Err(err) => match sink.printer.error.take() {
            Some(message) => bail!("{message}"),
            None if matches!(err, ApiError::Status { .. }) => {
                eprintln!("{}", server_error_line(&err));
                Err(Reported.into())
            }
            None => Err(err.into()),
        },
    }
}

/// Splits the body into lines and hands each event to the printer.
struct EventLines {
    pending: Vec<u8>,
    printer: Printer,
}

impl Write for EventLines {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let event: Value = serde_json::from_slice(&line).map_err(|err| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad watch event: {err}"),
                )
            })?;
            self.printer.event(&event)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Printer {
    resource: Resource,
    /// Only this object (`get pod NAME -w`).
    name: Option<String>,
    format: Format,
    with_namespace: bool,
    show_kind: bool,
    watch_only: bool,
    /// Objects of the initial state, until the bookmark that ends it; then `None`.
    initial: Option<Vec<Value>>,
    /// Set once the header is printed.
    columns: Option<Columns>,
    /// JSON/YAML documents printed so far.
    documents: usize,
    /// Why the server ended the watch, from an ERROR event.
    error: Option<String>,
}

impl Printer {
    fn event(&mut self, event: &Value) -> io::Result<()> {
        let object = &event["object"];
        match event["type"].as_str().unwrap_or("") {
            "BOOKMARK" => {
                let annotation = &object["metadata"]["annotations"][INITIAL_EVENTS_END];
                if annotation == "true" {
                    if let Some(initial) = self.initial.take() {
                        self.print_initial(initial)?;
                    }
                }
                Ok(())
            }
            "ERROR" => {
                let message = str_at(object, &["message"]);
                self.error = Some(format!("the watch ended: {message}"));
                Err(io::Error::other("the server ended the watch"))
            }
            "ADDED" | "MODIFIED" | "DELETED" => {
                if self
                    .name
                    .as_deref()
                    .is_some_and(|name| str_at(object, &["metadata", "name"]) != name)
                {
                    return Ok(());
                }
                match &mut self.initial {
                    Some(initial) => initial.push(object.clone()),
                    None => self.print_object(object)?,
                }
                Ok(())
            }
            // Event types from a newer server mean nothing to this client.
            _ => Ok(()),
        }
    }

    fn print_initial(&mut self, objects: Vec<Value>) -> io::Result<()> {
        if self.watch_only {
            return Ok(());
        }
        if let Format::Table | Format::Wide = self.format {
            if objects.is_empty() {
                return Ok(());
            }
            let rows: Vec<Vec<String>> = objects.iter().map(|o| self.row(o)).collect();
            let header = self.header();
            let mut columns = Columns::fit(&header, &rows);
            let mut out = io::stdout().lock();
            writeln!(out, "{}", columns.line(&header))?;
            for row in &rows {
                writeln!(out, "{}", columns.line(row))?;
            }
            self.columns = Some(columns);
            return Ok(());
        }
        for object in &objects {
            self.print_object(object)?;
        }
        Ok(())
    }

    fn print_object(&mut self, object: &Value) -> io::Result<()> {
        if let Format::Json | Format::Yaml = self.format {
            if self.format == Format::Yaml && self.documents > 0 {
                println!("---");
            }
            self.documents += 1;
            return print_document(self.format, object).map_err(io::Error::other);
        }
        let row = self.row(object);
        let header = self.header();
        let mut out = io::stdout().lock();
        let columns = match &mut self.columns {
            Some(columns) => columns,
            None => {
                let mut columns = Columns::fit(&header, std::slice::from_ref(&row));
                writeln!(out, "{}", columns.line(&header))?;
                self.columns.insert(columns)
            }
        };
        writeln!(out, "{}", columns.line(&row))
    }

    fn header(&self) -> Vec<&'static str> {
        tables::header(
            self.resource,
            self.format == Format::Wide,
            self.with_namespace,
        )
    }

    fn row(&self, object: &Value) -> Vec<String> {
        let wide = self.format == Format::Wide;
        tables::row(
            self.resource,
            object,
            wide,
            self.with_namespace,
            self.show_kind,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;
    use serde_json::json;

    fn printer(name: Option<&str>) -> Printer {
        Printer {
            resource: Resource::Kind(Kind::Pod),
            name: name.map(str::to_owned),
            format: Format::Table,
            with_namespace: false,
            show_kind: false,
            watch_only: false,
            initial: Some(Vec::new()),
            columns: None,
            documents: 0,
            error: None,
        }
    }

    fn event(kind: &str, name: &str) -> Value {
        json!({"type": kind, "object": {"metadata": {"name": name}}})
    }

    #[test]
    fn initial_objects_wait_for_the_bookmark_that_ends_them() {
        let mut p = printer(None);
        p.event(&event("ADDED", "a")).unwrap();
        p.event(&event("ADDED", "b")).unwrap();
        assert_eq!(p.initial.as_ref().map(Vec::len), Some(2));
        // A plain bookmark (a heartbeat) changes nothing.
        p.event(&json!({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "3"}}}))
            .unwrap();
        assert!(p.initial.is_some());
        let end = json!({"type": "BOOKMARK", "object": {"metadata": {"annotations": {INITIAL_EVENTS_END: "true"}}}});
        p.event(&end).unwrap();
        assert!(p.initial.is_none());
        assert!(p.columns.is_some());
    }

    #[test]
    fn a_named_watch_skips_other_objects_and_errors_end_it() {
        let mut p = printer(Some("a"));
        p.event(&event("ADDED", "b")).unwrap();
        p.event(&event("ADDED", "a")).unwrap();
        assert_eq!(p.initial.as_ref().map(Vec::len), Some(1));
        let error = json!({"type": "ERROR", "object": {"kind": "Status", "message": "store gone"}});
        assert!(p.event(&error).is_err());
        assert_eq!(p.error.as_deref(), Some("the watch ended: store gone"));
    }

    #[test]
    fn lines_are_split_across_writes() {
        let mut sink = EventLines {
            pending: Vec::new(),
            printer: printer(None),
        };
        let line = event("ADDED", "a").to_string();
        let (first, second) = line.split_at(10);
        sink.write_all(first.as_bytes()).unwrap();
        assert_eq!(sink.printer.initial.as_ref().map(Vec::len), Some(0));
        sink.write_all(format!("{second}\n\n").as_bytes()).unwrap();
        assert_eq!(sink.printer.initial.as_ref().map(Vec::len), Some(1));
        assert!(sink.write_all(b"not json\n").is_err());
    }
}
