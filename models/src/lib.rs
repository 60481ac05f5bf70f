//! augur-models: detectors and models behind the [`augur_operators::Detector`] boundary.
