//! Step 6 of a build: the atomic push ends. Each image was pushed under its staging tag as soon
//! as it was built (by the coordinator's workers, [`crate::publish::push`]); the final tags move
//! now ([`crate::publish::tags`]), only if everything built and staged and the run was not
//! stopped.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::build::coordinator::InRegistry;
use crate::build::engines::Engines;
use crate::build::work::{Results, Task};
use crate::common::types::PushMode;
use crate::publish::tags::{Pace, TagMover, move_final_tags};
use crate::report::event::{Outcome, PushOutcome, Reporter};
use crate::settings::Settings;

/// Moves the final tags when the atomic push asks for it and the run allows; a failed move is
/// recorded as the image's push outcome. Returns whether the final tags are in place (always
/// in the immediate mode: each push was under the final tag).
pub(super) async fn finish_push(
    settings: &Settings,
    engines: &Engines,
    tasks: &[Task],
    results: &mut Results,
    in_registry: &BTreeMap<String, InRegistry>,
    engine_lost: bool,
    reporter: &dyn Reporter,
) -> bool {
    if settings.build.push_mode == PushMode::Immediate {
        return true;
    }
    if !settings.build.push {
        return false;
    }
    let all_ok = results.outcomes.iter().all(Outcome::is_ok);
    let staged_all = results
        .pushes
        .iter()
        .zip(tasks)
        .all(|(p, t)| !t.push || matches!(p, Some(PushOutcome::Pushed { .. })));
    if !all_ok || !staged_all || engine_lost || crate::common::signals::interrupted().is_some() {
        return false;
    }
    let staged: Vec<(usize, String)> = tasks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.push)
        .map(|(i, t)| (i, t.request.reference.clone()))
        .collect();
    let mover = match &engines.registry {
        // No engine of a pool holds every image: the registry moves the tags.
        Some(registry) => TagMover::Registry(registry),
        None => TagMover::Engine(engines.first()),
    };
    let pace = Pace {
        threads: settings.build.push_threads,
        retries: settings.build.retries,
        backoff: Duration::from_secs(2),
    };
    // Images fresh in the registry are there under their final tag already.
    let already_final = |reference: &str| in_registry.contains_key(reference);
    let Some(moved) = move_final_tags(mover, staged, already_final, pace, reporter).await else {
        return false; // interrupted
    };
    let tags_moved = moved
        .iter()
        .all(|(_, o)| matches!(o, PushOutcome::Pushed { .. }));
    for (i, outcome) in moved {
        if let PushOutcome::Failed { .. } = outcome {
            results.pushes[i] = Some(outcome);
        }
    }
    tags_moved
}
