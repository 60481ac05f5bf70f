//! Line files (plain, zstd, gzip), input discovery and the dead-letter file.

use augur_connectors::dead_letter::{DeadLetter, DeadLetterFile, DeadLetterKind};
use augur_connectors::files::{FileError, LineReader, LineWriter, find_input};

fn lines() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![
        b"{\"resourceSpans\":[]}".to_vec(),
        Vec::new(),
        b"second \xff not utf8".to_vec(),
        b"with \r inside".to_vec(),
    ];
    v.extend((0..5000).map(|i| format!("line {i} {}", "x".repeat(i % 300)).into_bytes()));
    v
}

/// Everything worker `index` of `peers` reads from the input at `path`, polled to its end.
fn read_all(path: &std::path::Path, index: usize, peers: usize) -> augur_connectors::source::Batch {
    use augur_connectors::files::FileSource;
    use augur_connectors::otlp::MetricNames;
    use augur_connectors::source::{Batch, SourceState, WorkerSource};
    let mut source = FileSource::open(path, MetricNames::default(), index, peers).expect("opens");
    let mut batch = Batch::default();
    let mut polls = 0;
    while !matches!(
        source
            .poll(&mut batch)
            .expect("polls: a cut or bad line is no error"),
        SourceState::Exhausted
    ) {
        polls += 1;
        assert!(polls < 1000, "the source never finished");
    }
    batch
}

#[test]
fn round_trip_plain_zst_gz() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["a.jsonl", "a.jsonl.zst", "a.jsonl.gz"] {
        let path = dir.path().join(name);
        let mut w = LineWriter::create(&path).expect("create");
        for l in lines() {
            w.write_line(&l).expect("write");
        }
        w.finish().expect("finish");

        let raw = std::fs::read(&path).expect("read");
        match name {
            "a.jsonl.zst" => assert_eq!(&raw[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd magic"),
            "a.jsonl.gz" => assert_eq!(&raw[..2], &[0x1f, 0x8b], "gzip magic"),
            _ => assert!(raw.starts_with(b"{\"resourceSpans\"")),
        }

        let mut r = LineReader::open(&path).expect("open");
        let mut buf = Vec::new();
        let mut got = Vec::new();
        let mut expect_no = 1;
        while let Some(no) = r.next_line(&mut buf).expect("read line") {
            assert_eq!(no, expect_no);
            expect_no += 1;
            got.push(buf.clone());
        }
        assert_eq!(got, lines(), "{name}");
        let (done, total) = r.progress();
        assert_eq!(total, raw.len() as u64);
        assert_eq!(done, total, "{name}: all bytes consumed");
        assert_eq!(r.next_line(&mut buf).expect("eof"), None);
    }
}

#[test]
fn drop_finishes_the_compressor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("d.jsonl.zst");
    {
        let mut w = LineWriter::create(&path).expect("create");
        w.write_line(b"one").expect("write");
    }
    let mut r = LineReader::open(&path).expect("open");
    let mut buf = Vec::new();
    assert_eq!(r.next_line(&mut buf).expect("line"), Some(1));
    assert_eq!(buf, b"one");
}

#[test]
fn crlf_and_missing_final_newline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.jsonl");
    std::fs::write(&path, b"a\r\nb\n\nc").expect("write");
    let mut r = LineReader::open(&path).expect("open");
    let mut buf = Vec::new();
    let mut got = Vec::new();
    while let Some(n) = r.next_line(&mut buf).expect("line") {
        got.push((n, String::from_utf8(buf.clone()).expect("utf8")));
    }
    assert_eq!(
        got,
        [
            (1, "a".into()),
            (2, "b".into()),
            (3, String::new()),
            (4, "c".into())
        ]
    );
}

#[test]
fn corrupt_compressed_file_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.jsonl.gz");
    std::fs::write(&path, b"this is not gzip at all\n").expect("write");
    let mut r = LineReader::open(&path).expect("open");
    let mut buf = Vec::new();
    let e = r.next_line(&mut buf).unwrap_err();
    assert!(matches!(e, FileError::Read { line: 1, .. }), "{e}");
    assert!(e.to_string().contains("bad.jsonl.gz"), "{e}");
}

#[test]
fn open_missing_names_the_path() {
    let e = LineReader::open(std::path::Path::new("/nonexistent/x.jsonl")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/x.jsonl"), "{e}");
}

/// A directory that isn't there, or a file given for it, is said as such (not as a
/// directory without input files).
#[test]
fn find_input_on_no_directory_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("typo");
    let e = find_input(&missing, "traces.otlp").unwrap_err();
    assert!(matches!(e, FileError::NoDirectory { .. }), "{e}");
    assert!(e.to_string().contains("no such directory"), "{e}");
    let file = dir.path().join("traces.otlp.jsonl");
    std::fs::write(&file, b"").expect("write");
    let e = find_input(&file, "traces.otlp").unwrap_err();
    assert!(matches!(e, FileError::NotADirectory { .. }), "{e}");
}

#[test]
fn find_input_picks_existing_variant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = find_input(dir.path(), "traces.otlp").unwrap_err();
    assert!(matches!(e, FileError::NotFound { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains("traces.otlp.jsonl.zst") && msg.contains(&dir.path().display().to_string()),
        "{msg}"
    );

    std::fs::write(dir.path().join("traces.otlp.jsonl.gz"), b"").expect("write");
    assert_eq!(
        find_input(dir.path(), "traces.otlp").expect("found"),
        dir.path().join("traces.otlp.jsonl.gz")
    );
    std::fs::write(dir.path().join("traces.otlp.jsonl.zst"), b"").expect("write");
    assert_eq!(
        find_input(dir.path(), "traces.otlp").expect("found"),
        dir.path().join("traces.otlp.jsonl.zst")
    );
    std::fs::write(dir.path().join("traces.otlp.jsonl"), b"").expect("write");
    assert_eq!(
        find_input(dir.path(), "traces.otlp").expect("found"),
        dir.path().join("traces.otlp.jsonl")
    );
    // Another stem is not confused with it.
    assert!(find_input(dir.path(), "metrics.otlp").is_err());
}

#[test]
fn dead_letter_file_lines_parse() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("dlq.jsonl");
    let mut f = DeadLetterFile::create(&path).expect("create");
    assert_eq!(f.count(), 0);
    assert_eq!(f.first(), None);
    f.write(&DeadLetter {
        source: "data/traces.otlp.jsonl".into(),
        offset: 17,
        reason: "invalid OTLP JSON at line 1 column 3: expected value".into(),
        kind: DeadLetterKind::Invalid,
        payload: b"{\"oops\" \n".to_vec(),
    })
    .expect("write");
    f.write(&DeadLetter {
        source: "otlp_spans/3".into(),
        offset: 123_456,
        reason: "invalid protobuf: truncated varint".into(),
        kind: DeadLetterKind::Invalid,
        payload: vec![0x0a, 0xff, 0xfe],
    })
    .expect("write");
    assert_eq!(f.count(), 2);
    // The summary names the first: where from, and why.
    assert_eq!(
        f.first(),
        Some("data/traces.otlp.jsonl at 17: invalid OTLP JSON at line 1 column 3: expected value")
    );
    f.flush().expect("flush");

    let text = std::fs::read_to_string(&path).expect("read");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["source"], "data/traces.otlp.jsonl");
    assert_eq!(lines[0]["offset"], 17);
    assert_eq!(lines[0]["payload"], "{\"oops\" \n");
    assert!(lines[0].get("payload_base64").is_none());
    let time = lines[0]["time"].as_str().expect("time");
    assert!(
        time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "{time}"
    );
    assert_eq!(lines[1]["offset"], 123_456);
    assert_eq!(lines[1]["payload_base64"], "Cv/+");
    assert!(lines[1].get("payload").is_none());
}

/// A line whose spans all fail validation is one dead letter (its records counted), not
/// one per span: each would repeat the whole line, so a line of n spans would cost n times
/// its own size.
#[test]
fn a_line_of_rejected_spans_is_one_dead_letter() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 2000 spans of a resource without service.name, then a line of one good span.
    let spans = vec!["{\"traceId\":\"01010101010101010101010101010101\",\"spanId\":\"0101010101010101\",\"startTimeUnixNano\":\"1\",\"endTimeUnixNano\":\"2\"}"; 2000].join(",");
    let bad = format!("{{\"resourceSpans\":[{{\"scopeSpans\":[{{\"spans\":[{spans}]}}]}}]}}");
    let good = augur_connectors::otlp::encode_traces_json(&[augur_operators::records::Span {
        trace_id: 1,
        span_id: 1,
        parent_span_id: None,
        service: "a".into(),
        instance: "a".into(),
        kind: augur_operators::records::SpanKind::Server,
        name: "op".into(),
        start_ns: 1,
        end_ns: 2,
        error: false,
        peer_service: None,
        version: None,
    }]);
    std::fs::write(
        dir.path().join("traces.otlp.jsonl"),
        format!("{bad}\n{good}\n"),
    )
    .expect("writes");
    std::fs::write(dir.path().join("metrics.otlp.jsonl"), "").expect("writes");
    let batch = read_all(dir.path(), 0, 1);
    assert_eq!(batch.spans.len(), 1);
    assert_eq!(batch.dead.len(), 1, "one dead letter for the line");
    let dead = &batch.dead[0];
    assert_eq!(dead.kind, DeadLetterKind::Rejected { records: 2000 });
    assert_eq!(dead.payload, bad.as_bytes());
    assert_eq!(
        dead.reason,
        "2000 records failed validation, the first: missing service.name"
    );
}

/// A compressed file cut off mid-frame (its writer stopped) is read up to the cut: the
/// spans before it go on, the rest is one dead letter saying so, from one worker of two,
/// and the source finishes instead of failing the job.
#[test]
fn a_file_cut_off_mid_frame_is_read_up_to_the_cut() {
    use augur_connectors::otlp::encode_traces_json;

    let span = |id: u64| augur_operators::records::Span {
        trace_id: 1,
        span_id: id,
        parent_span_id: None,
        service: "a".into(),
        instance: "a".into(),
        kind: augur_operators::records::SpanKind::Server,
        name: "op".into(),
        start_ns: id * 1_000_000,
        end_ns: id * 1_000_000 + 1,
        error: false,
        peer_service: None,
        version: None,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    // Two whole frames of one line each, then a frame cut in half.
    let mut packed = Vec::new();
    for id in 1..=2 {
        let line = format!("{}\n", encode_traces_json(&[span(id)]));
        packed.extend(zstd::encode_all(line.as_bytes(), 3).expect("compresses"));
    }
    let rest: String = (3..200)
        .map(|id| format!("{}\n", encode_traces_json(&[span(id)])))
        .collect();
    let rest = zstd::encode_all(rest.as_bytes(), 3).expect("compresses");
    packed.extend_from_slice(&rest[..rest.len() / 2]);
    std::fs::write(dir.path().join("traces.otlp.jsonl.zst"), &packed).expect("writes");
    std::fs::write(dir.path().join("metrics.otlp.jsonl"), "").expect("writes");
    let mut spans = 0;
    let mut dead = Vec::new();
    for index in 0..2 {
        let batch = read_all(dir.path(), index, 2);
        spans += batch.spans.len();
        dead.extend(batch.dead);
    }
    assert!(spans >= 2, "the whole frames are read: {spans}");
    assert_eq!(dead.len(), 1, "one dead letter, from one worker: {dead:?}");
    assert_eq!(dead[0].kind, DeadLetterKind::Invalid);
    assert!(
        dead[0]
            .reason
            .starts_with("unreadable from this line to the end"),
        "{}",
        dead[0].reason
    );
    assert!(dead[0].source.ends_with("traces.otlp.jsonl.zst"));
}

/// An application without tracing: a directory with metrics and logs and no traces file is
/// an input, read by every worker of two (each line decoded once); one with none of the
/// three files says which it looked for.
#[test]
fn a_directory_without_traces_is_read_from_its_metrics_and_logs() {
    use augur_connectors::files::{FileSource, input_files};
    use augur_connectors::otlp::MetricNames;

    let dir = tempfile::tempdir().expect("tempdir");
    let gauge = |t: u64| {
        format!(
            r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"cart"}}}}]}},"scopeMetrics":[{{"metrics":[{{"name":"container.cpu.utilization","gauge":{{"dataPoints":[{{"timeUnixNano":"{t}000000000","asDouble":0.5}}]}}}}]}}]}}]}}"#
        )
    };
    let log = |t: u64| {
        format!(
            r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"cart"}}}}]}},"scopeLogs":[{{"logRecords":[{{"timeUnixNano":"{t}000000000","severityText":"ERROR","body":{{"stringValue":"cart store unreachable"}}}}]}}]}}]}}"#
        )
    };
    let metrics: Vec<String> = (1..=5).map(gauge).collect();
    let logs: Vec<String> = (1..=3).map(log).collect();
    std::fs::write(dir.path().join("metrics.otlp.jsonl"), metrics.join("\n")).expect("writes");
    std::fs::write(dir.path().join("logs.otlp.jsonl"), logs.join("\n")).expect("writes");

    let files = input_files(dir.path()).expect("an input");
    assert_eq!(files.traces, None);
    assert_eq!(files.metrics, Some(dir.path().join("metrics.otlp.jsonl")));
    assert_eq!(files.logs, Some(dir.path().join("logs.otlp.jsonl")));
    let (mut points, mut records) = (0, 0);
    for index in 0..2 {
        let batch = read_all(dir.path(), index, 2);
        assert!(batch.spans.is_empty());
        assert!(batch.dead.is_empty(), "{:?}", batch.dead);
        points += batch.metrics.len();
        records += batch.logs.len();
    }
    assert_eq!((points, records), (5, 3));

    let empty = tempfile::tempdir().expect("tempdir");
    let e = input_files(empty.path()).unwrap_err();
    assert!(matches!(e, FileError::NoInputs { .. }), "{e}");
    let msg = e.to_string();
    for file in ["traces.otlp.jsonl", "metrics.otlp.jsonl", "logs.otlp.jsonl"] {
        assert!(msg.contains(file), "{msg}");
    }
    assert!(FileSource::open(empty.path(), MetricNames::default(), 0, 1).is_err());
}

/// A Collector whose pipelines share one file exporter writes spans, metrics and logs to one
/// file: given itself as the input, each line is read as the signal it holds, by every
/// worker of two; a line of no OTLP signal is a dead letter.
#[test]
fn one_file_of_every_signal_is_read_line_by_line() {
    use augur_connectors::files::{input_files, services_in_head};
    use augur_connectors::otlp::{MetricNames, encode_traces_json};

    let span = |id: u64| augur_operators::records::Span {
        trace_id: 1,
        span_id: id,
        parent_span_id: None,
        service: "front".into(),
        instance: "front-0".into(),
        kind: augur_operators::records::SpanKind::Server,
        name: "op".into(),
        start_ns: id * 1_000_000_000,
        end_ns: id * 1_000_000_000 + 5_000_000,
        error: false,
        peer_service: None,
        version: None,
    };
    let gauge = |t: u64| {
        format!(
            r#"{{"resourceMetrics":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"cart"}}}}]}},"scopeMetrics":[{{"metrics":[{{"name":"container.cpu.utilization","gauge":{{"dataPoints":[{{"timeUnixNano":"{t}000000000","asDouble":0.5}}]}}}}]}}]}}]}}"#
        )
    };
    let log = |t: u64| {
        format!(
            r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"store"}}}}]}},"scopeLogs":[{{"logRecords":[{{"timeUnixNano":"{t}000000000","body":{{"stringValue":"saved"}}}}]}}]}}]}}"#
        )
    };
    let mut lines = Vec::new();
    for t in 1..=4 {
        lines.push(encode_traces_json(&[span(t)]));
        lines.push(gauge(t));
        lines.push(log(t));
    }
    lines.push(r#"{"data":[]}"#.to_string());
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("agent.out");
    std::fs::write(&file, lines.join("\n")).expect("writes");

    let files = input_files(&file).expect("a file is an input");
    assert_eq!(files.single, Some(file.clone()));
    assert_eq!(
        (files.traces, files.metrics, files.logs),
        (None, None, None)
    );
    let seen = services_in_head(&file, 100, &MetricNames::default()).expect("reads");
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["cart", "front", "store"].map(String::from)
    );
    let (mut spans, mut points, mut records, mut dead) = (0, 0, 0, Vec::new());
    for index in 0..2 {
        let batch = read_all(&file, index, 2);
        spans += batch.spans.len();
        points += batch.metrics.len();
        records += batch.logs.len();
        dead.extend(batch.dead);
    }
    assert_eq!((spans, points, records), (4, 4, 4));
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].offset, 13);
}
