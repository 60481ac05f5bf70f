//! `augur train seer|sage|fluxion|normal` (or `augur train --model M`): train a model and write
//! the next checkpoint version. One module per model: [`super::train_seer`],
//! [`super::train_sage`], [`super::train_fluxion`], [`super::train_normal`].

use crate::cli::{TrainArgs, TrainModel};

pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    match args.model()? {
        TrainModel::Seer(seer) => super::train_seer::run(&seer),
        TrainModel::Sage(sage) => super::train_sage::run(&sage),
        TrainModel::Fluxion(fluxion) => super::train_fluxion::run(&fluxion),
        TrainModel::Normal(normal) => super::train_normal::run(&normal),
    }
}
