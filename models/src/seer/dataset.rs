//! Seer datasets: per-window feature tensors with labels, as Arrow IPC files.
//!
//! One row per window: `window_end` (UInt64), `violated` (this window's QoS check),
//! `positive` (a violation within the horizon), `culprit` (Int32 index into the services,
//! null when none) and `features` (FixedSizeList<Float32> of `services × features`,
//! row-major, services back end first, missing services zeros). The schema metadata holds
//! the service order, feature names, window length and horizon as JSON.
//! In/out: files. State: none.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, FixedSizeListBuilder, Float32Builder, Int32Builder, UInt64Builder,
};
use arrow_array::{
    Array, BooleanArray, FixedSizeListArray, Float32Array, Int32Array, RecordBatch, UInt64Array,
};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DatasetError {
    // The cause is the error's `source`, printed by the chain (`{:#}`), not repeated here.
    #[error("dataset {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("dataset {path}: not a readable Arrow IPC file")]
    Arrow { path: PathBuf, source: ArrowError },
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },
}

/// One window.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub window_end: u64,
    pub violated: bool,
    pub positive: bool,
    /// Index into [`Dataset::services`].
    pub culprit: Option<usize>,
    /// `services × features`, row-major.
    pub x: Vec<f32>,
}

/// A recorded replay: consecutive windows of one run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dataset {
    pub services: Vec<String>,
    pub features: Vec<String>,
    pub window_ms: u64,
    pub horizon_ms: u64,
    pub rows: Vec<Row>,
}

impl Dataset {
    fn width(&self) -> usize {
        self.services.len() * self.features.len()
    }

    /// The same windows with only the features `names`, in that order; the error is the
    /// first name this dataset doesn't have.
    pub fn select_features(&self, names: &[String]) -> Result<Dataset, String> {
        let columns: Vec<usize> = names
            .iter()
            .map(|n| self.features.iter().position(|f| f == n).ok_or(n.clone()))
            .collect::<Result<_, _>>()?;
        let f = self.features.len().max(1);
        let rows = self
            .rows
            .iter()
            .map(|r| Row {
                x: r.x
                    .chunks(f)
                    .flat_map(|service| columns.iter().map(|c| service[*c]))
                    .collect(),
                ..r.clone()
            })
            .collect();
        Ok(Dataset {
            features: names.to_vec(),
            rows,
            ..self.clone()
        })
    }

    /// Rows re-indexed to `services` (by name; services this dataset lacks are zeros).
    pub fn project(&self, services: &[String]) -> Vec<Row> {
        let f = self.features.len();
        let map: Vec<Option<usize>> = services
            .iter()
            .map(|s| self.services.iter().position(|o| o == s))
            .collect();
        self.rows
            .iter()
            .map(|r| {
                let mut x = vec![0.0f32; services.len() * f];
                for (i, j) in map.iter().enumerate() {
                    if let Some(j) = j {
                        x[i * f..(i + 1) * f].copy_from_slice(&r.x[j * f..(j + 1) * f]);
                    }
                }
                let culprit = r
                    .culprit
                    .and_then(|c| services.iter().position(|s| *s == self.services[c]));
                Row {
                    x,
                    culprit,
                    ..r.clone()
                }
            })
            .collect()
    }

    fn schema(&self) -> Schema {
        let meta = [
            (
                "augur.services",
                serde_json::json!(self.services).to_string(),
            ),
            (
                "augur.features",
                serde_json::json!(self.features).to_string(),
            ),
            ("augur.window_ms", self.window_ms.to_string()),
            ("augur.horizon_ms", self.horizon_ms.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Schema::new(vec![
            Field::new("window_end", DataType::UInt64, false),
            Field::new("violated", DataType::Boolean, false),
            Field::new("positive", DataType::Boolean, false),
            Field::new("culprit", DataType::Int32, true),
            Field::new(
                "features",
                DataType::FixedSizeList(
                    Arc::new(Field::new("item", DataType::Float32, true)),
                    self.width() as i32,
                ),
                false,
            ),
        ])
        .with_metadata(meta)
    }

    /// Writes the dataset as one Arrow IPC file.
    pub fn write(&self, path: &Path) -> Result<(), DatasetError> {
        let arrow = |source| DatasetError::Arrow {
            path: path.to_path_buf(),
            source,
        };
        let schema = Arc::new(self.schema());
        let mut ends = UInt64Builder::new();
        let mut violated = BooleanBuilder::new();
        let mut positive = BooleanBuilder::new();
        let mut culprit = Int32Builder::new();
        let mut features = FixedSizeListBuilder::new(Float32Builder::new(), self.width() as i32)
            .with_field(Arc::new(Field::new("item", DataType::Float32, true)));
        for r in &self.rows {
            ends.append_value(r.window_end);
            violated.append_value(r.violated);
            positive.append_value(r.positive);
            culprit.append_option(r.culprit.map(|c| c as i32));
            features.values().append_slice(&r.x);
            features.append(true);
        }
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(ends.finish()),
                Arc::new(violated.finish()),
                Arc::new(positive.finish()),
                Arc::new(culprit.finish()),
                Arc::new(features.finish()),
            ],
        )
        .map_err(arrow)?;
        let file = std::fs::File::create(path).map_err(|source| DatasetError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut writer = arrow_ipc::writer::FileWriter::try_new(file, &schema).map_err(arrow)?;
        writer.write(&batch).map_err(arrow)?;
        writer.finish().map_err(arrow)
    }

    /// Reads a file written by [`Dataset::write`].
    pub fn read(path: &Path) -> Result<Self, DatasetError> {
        let arrow = |source| DatasetError::Arrow {
            path: path.to_path_buf(),
            source,
        };
        let format = |reason: String| DatasetError::Format {
            path: path.to_path_buf(),
            reason,
        };
        let file = std::fs::File::open(path).map_err(|source| DatasetError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let reader = arrow_ipc::reader::FileReader::try_new(file, None).map_err(arrow)?;
        let meta = reader.schema().metadata().clone();
        let get = |k: &str| {
            meta.get(k)
                .cloned()
                .ok_or_else(|| format(format!("schema metadata lacks `{k}`")))
        };
        let mut ds = Dataset {
            services: serde_json::from_str(&get("augur.services")?)
                .map_err(|e| format(e.to_string()))?,
            features: serde_json::from_str(&get("augur.features")?)
                .map_err(|e| format(e.to_string()))?,
            window_ms: get("augur.window_ms")?
                .parse()
                .map_err(|e| format(format!("{e}")))?,
            horizon_ms: get("augur.horizon_ms")?
                .parse()
                .map_err(|e| format(format!("{e}")))?,
            rows: Vec::new(),
        };
        let width = ds.width();
        for batch in reader {
            let batch = batch.map_err(arrow)?;
            let col = |name: &str| {
                batch
                    .column_by_name(name)
                    .cloned()
                    .ok_or_else(|| format(format!("no column `{name}`")))
            };
            let ends = col("window_end")?;
            let ends = ends.as_any().downcast_ref::<UInt64Array>();
            let violated = col("violated")?;
            let violated = violated.as_any().downcast_ref::<BooleanArray>();
            let positive = col("positive")?;
            let positive = positive.as_any().downcast_ref::<BooleanArray>();
            let culprit = col("culprit")?;
            let culprit = culprit.as_any().downcast_ref::<Int32Array>();
            let features = col("features")?;
            let features = features.as_any().downcast_ref::<FixedSizeListArray>();
            let (Some(ends), Some(violated), Some(positive), Some(culprit), Some(features)) =
                (ends, violated, positive, culprit, features)
            else {
                return Err(format("unexpected column types".to_string()));
            };
            let values = features.values();
            let values = values
                .as_any()
                .downcast_ref::<Float32Array>()
                .ok_or_else(|| format("features are not Float32".to_string()))?;
            if features.value_length() as usize != width {
                return Err(format(format!(
                    "features have {} values per window, expected {width}",
                    features.value_length()
                )));
            }
            for i in 0..batch.num_rows() {
                let start = features.value_offset(i) as usize;
                ds.rows.push(Row {
                    window_end: ends.value(i),
                    violated: violated.value(i),
                    positive: positive.value(i),
                    culprit: (!culprit.is_null(i)).then(|| culprit.value(i) as usize),
                    x: values.values()[start..start + width].to_vec(),
                });
            }
        }
        Ok(ds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_names_its_path_once_and_its_cause_once() {
        let path = Path::new("/nonexistent/augur-test.arrow");
        let Err(e) = Dataset::read(path) else {
            panic!("read a file that doesn't exist");
        };
        // The message names the file; the cause comes from `source()`, so an error chain
        // printed with `{:#}` says each once.
        assert_eq!(e.to_string(), "dataset /nonexistent/augur-test.arrow");
        let cause = std::error::Error::source(&e).map(ToString::to_string);
        assert!(cause.is_some_and(|c| !c.contains("augur-test")));
    }

    #[test]
    fn write_read_round_trip_and_projection() {
        let ds = Dataset {
            services: vec!["db".into(), "fe".into()],
            features: vec!["a".into(), "b".into()],
            window_ms: 1000,
            horizon_ms: 1000,
            rows: vec![
                Row {
                    window_end: 1000,
                    violated: false,
                    positive: true,
                    culprit: Some(0),
                    x: vec![1.0, 2.0, 3.0, 4.0],
                },
                Row {
                    window_end: 2000,
                    violated: true,
                    positive: true,
                    culprit: None,
                    x: vec![5.0, 6.0, 7.0, 8.0],
                },
            ],
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.arrow");
        ds.write(&path).unwrap();
        let back = Dataset::read(&path).unwrap();
        assert_eq!(back, ds);
        let p = ds.project(&["new".to_string(), "db".to_string()]);
        assert_eq!(p[0].x, vec![0.0, 0.0, 1.0, 2.0]);
        assert_eq!(p[0].culprit, Some(1));
        let b = ds.select_features(&["b".to_string()]).unwrap();
        assert_eq!(b.features, vec!["b".to_string()]);
        assert_eq!(b.rows[1].x, vec![6.0, 8.0]);
        assert!(b.rows[1].violated);
        assert_eq!(ds.select_features(&["c".to_string()]), Err("c".to_string()));
    }
}
