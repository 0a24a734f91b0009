//! The run as a picture (`--report FILE.html`, `kolla-build report SUMMARY.json -o FILE.html`):
//! one self-contained HTML page drawn from a summary alone. An SVG with a lane per engine and
//! build slot, a bar per image coloured by outcome and placed by its times, the pushes and tag
//! moves, the critical path outlined; images that took no slot (fresh, skipped, not built) as
//! chips below. A little inline script selects a bar and marks its parents up to the root.
//! Nothing is loaded from anywhere: no fonts, styles or scripts from the network.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use crate::common::error::{Error, Result};
use crate::report::critical_path::{CriticalPath, build_seconds, critical_path, run_images};
use crate::report::summary::{Entry, RunTiming, Summary};

mod assets;
use assets::{HEAD, SCRIPT};

/// `report` as the summary's `--report` file.
pub fn write(path: &Path, summary: &Summary) -> Result<()> {
    crate::common::fs::write_atomically(path, html(summary).as_bytes())
}

/// Reads the JSON summary at `summary` (an earlier run's `--summary-json-file`) and writes its
/// picture to `output`.
pub fn write_from_summary_file(summary: &Path, output: &Path) -> Result<()> {
    let text = std::fs::read_to_string(summary).map_err(|source| Error::Read {
        path: summary.to_path_buf(),
        source,
    })?;
    let parsed: Summary = serde_json::from_str(&text).map_err(|e| Error::Config {
        path: summary.to_path_buf(),
        message: format!(
            "not a kolla-build summary ({e})\nhint: `kolla-build report` reads the file a run \
             wrote with `--summary-json-file`"
        ),
    })?;
    write(output, &parsed)
}

/// What a bar's colour says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Built,
    Failed,
    PushFailed,
    Cancelled,
    Fresh,
    Skipped,
    ParentFailed,
    NotBuilt,
}

impl Kind {
    const ALL: [Kind; 8] = [
        Kind::Built,
        Kind::Fresh,
        Kind::Failed,
        Kind::PushFailed,
        Kind::Skipped,
        Kind::ParentFailed,
        Kind::Cancelled,
        Kind::NotBuilt,
    ];

    /// From the summary's status (an unknown one, from a newer version, reads as not built).
    fn of(entry: &Entry) -> Kind {
        match entry.status.as_deref() {
            Some("built") => Kind::Built,
            Some("fresh") => Kind::Fresh,
            Some("error") => Kind::Failed,
            Some("push_error") => Kind::PushFailed,
            Some("skipped") => Kind::Skipped,
            Some("parent_error") => Kind::ParentFailed,
            Some("cancelled") => Kind::Cancelled,
            _ => Kind::NotBuilt,
        }
    }

    /// The CSS class and the `data-outcome` of its bars.
    fn class(self) -> &'static str {
        match self {
            Kind::Built => "built",
            Kind::Fresh => "fresh",
            Kind::Failed => "failed",
            Kind::PushFailed => "push-failed",
            Kind::Skipped => "skipped",
            Kind::ParentFailed => "parent-failed",
            Kind::Cancelled => "cancelled",
            Kind::NotBuilt => "not-built",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Built => "built",
            Kind::Fresh => "fresh (unchanged, not rebuilt)",
            Kind::Failed => "failed",
            Kind::PushFailed => "built, push failed",
            Kind::Skipped => "skipped (exists)",
            Kind::ParentFailed => "parent failed",
            Kind::Cancelled => "cancelled",
            Kind::NotBuilt => "not built",
        }
    }
}

const LABEL_WIDTH: f64 = 250.0;
const CHART_WIDTH: f64 = 1100.0;
const LANE: f64 = 20.0;
const GROUP_GAP: f64 = 12.0;
const AXIS: f64 = 26.0;
const CHIP_WIDTH: f64 = 180.0;
/// Roughly the width of a character of the bars' 11px sans-serif text.
const CHAR_WIDTH: f64 = 6.4;
const NOT_RECORDED: &str = "engine not recorded";

/// One image of the run, as drawn.
struct Image<'a> {
    entry: &'a Entry,
    kind: Kind,
    /// Its build's start and end, when it took a build slot.
    span: Option<(f64, f64)>,
    engine: Option<&'a str>,
    critical: bool,
}

/// The page for `summary`.
pub fn html(summary: &Summary) -> String {
    let path = critical_path(summary);
    let on_path: BTreeSet<&str> = path.images.iter().map(String::as_str).collect();
    let timing = summary.timing.as_ref();
    let single_engine = timing
        .filter(|t| t.engines.len() == 1)
        .map(|t| t.engines[0].url.as_str());
    let images: Vec<Image> = run_images(summary)
        .into_values()
        .map(|entry| Image {
            entry,
            kind: Kind::of(entry),
            span: entry.started_at.zip(entry.finished_at),
            engine: entry.engine.as_deref().or(single_engine),
            critical: on_path.contains(entry.name.as_str()),
        })
        .collect();
    let end = images
        .iter()
        .flat_map(|i| [i.span.map(|s| s.1), i.entry.pushed_at])
        .flatten()
        .chain(timing.map(|t| t.wall_seconds))
        .fold(0.0_f64, f64::max)
        .max(1.0);

    let mut page = String::new();
    page.push_str(HEAD);
    header(&mut page, summary, &images, &path);
    page.push_str("<div id=\"chart\">");
    chart(&mut page, summary, &images, end);
    page.push_str("</div>\n<div id=\"details\" hidden></div>\n");
    let _ = write!(page, "<script>{SCRIPT}</script>\n</body>\n</html>\n");
    page
}

fn header(page: &mut String, summary: &Summary, images: &[Image], path: &CriticalPath) {
    title(page, summary);
    page.push_str("<dl class=\"facts\">\n");
    match &summary.timing {
        Some(timing) => timing_facts(page, timing, images),
        None => fact(
            page,
            "times",
            "this summary has none (written by an older kolla-build): every image is listed, \
             none is placed in time",
        ),
    }
    fact(page, "critical path", &critical_path_fact(path));
    image_facts(page, images);
    page.push_str("</dl>\n");
    legend(page, images);
    page.push_str(
        "<p class=\"hint\">Hover a bar for its times; click it (or focus it and press Enter) to \
         mark the images it is built on, up to the root.</p>\n</header>\n",
    );
}

/// The page's heading: the run's status, and its error if it has one.
fn title(page: &mut String, summary: &Summary) {
    let status = if summary.status.is_empty() {
        "unknown"
    } else {
        &summary.status
    };
    let _ = writeln!(
        page,
        "<header><h1>kolla-build run: <span class=\"status {}\">{}</span></h1>",
        escape(status),
        escape(status)
    );
    if let Some(error) = &summary.error {
        let _ = writeln!(page, "<p class=\"error\">{}</p>", escape(error));
    }
}

/// One line of the header's facts; `value` is HTML already.
fn fact(page: &mut String, name: &str, value: &str) {
    let _ = writeln!(page, "<div><dt>{name}</dt><dd>{value}</dd></div>");
}

/// The facts of a run that recorded its times: when, how long, how busy, on which engines.
fn timing_facts(page: &mut String, timing: &RunTiming, images: &[Image]) {
    let wall = timing.wall_seconds;
    let summed: f64 = images
        .iter()
        .filter_map(|i| i.span)
        .map(|(s, e)| e - s)
        .sum();
    fact(page, "started", &escape(&timing.started));
    fact(page, "wall time", &duration(wall));
    let average = if wall > 0.0 {
        format!(
            "{} ({:.2} builds at once on average)",
            duration(summed),
            summed / wall
        )
    } else {
        duration(summed)
    };
    fact(page, "image time, summed", &average);
    cpu_floor_facts(page, timing);
    let engines: Vec<String> = timing
        .engines
        .iter()
        .map(|e| format!("{} ({} slots)", escape(&e.url), e.threads))
        .collect();
    fact(page, "engines", &engines.join(", "));
}

/// The least wall time the host's CPUs allowed, and how far the run was from it.
fn cpu_floor_facts(page: &mut String, timing: &RunTiming) {
    match timing.cpu_seconds.zip(timing.cpus) {
        Some((cpu, cpus)) if cpus > 0 && cpu > 0.0 => {
            let floor = cpu / cpus as f64;
            fact(
                page,
                "CPU floor",
                &format!(
                    "{} ({cpu:.0} CPU-seconds of the host on {cpus} CPUs)",
                    duration(floor)
                ),
            );
            fact(
                page,
                "wall / CPU floor",
                &format!(
                    "<strong id=\"ratio\">{:.2}x</strong>",
                    timing.wall_seconds / floor
                ),
            );
        }
        _ => fact(
            page,
            "CPU floor",
            "not measured (no /proc/stat here, or too short a run)",
        ),
    }
}

/// The critical path's length and its images, root first.
fn critical_path_fact(path: &CriticalPath) -> String {
    if path.images.is_empty() {
        "nothing was built".into()
    } else {
        format!(
            "{}: {}",
            duration(path.seconds),
            path.images
                .iter()
                .map(|n| escape(n))
                .collect::<Vec<_>>()
                .join(" → ")
        )
    }
}

/// How many images ended each way, and what the package caches served them.
fn image_facts(page: &mut String, images: &[Image]) {
    let counts: Vec<String> = Kind::ALL
        .iter()
        .filter_map(|&kind| {
            let n = images.iter().filter(|i| i.kind == kind).count();
            (n > 0).then(|| format!("{n} {}", kind.class().replace('-', " ")))
        })
        .collect();
    fact(page, "images", &counts.join(", "));
    let bytes: u64 = images.iter().filter_map(|i| i.entry.network_bytes).sum();
    if bytes > 0 {
        fact(page, "from the package caches", &size(bytes));
    }
}

/// The colours that appear on the chart, and what each says.
fn legend(page: &mut String, images: &[Image]) {
    page.push_str("<p class=\"legend\">");
    for kind in Kind::ALL {
        if images.iter().any(|i| i.kind == kind) {
            let _ = write!(
                page,
                "<span><i class=\"swatch {}\"></i>{}</span>",
                kind.class(),
                kind.label()
            );
        }
    }
    page.push_str("<span><i class=\"swatch critical-swatch\"></i>critical path</span>");
    if images.iter().any(|i| i.entry.pushed_at.is_some()) {
        page.push_str("<span><i class=\"swatch push\"></i>push</span>");
    }
    page.push_str("</p>\n");
}

/// One lane's bars: index into the images, start, end.
type Lane = Vec<(usize, f64, f64)>;

/// A lane group: its title and its lanes' bars.
struct Group {
    title: String,
    lanes: Vec<Lane>,
}

/// Packs spans into as few lanes as they need, earliest first (each lane one build slot).
fn pack(mut spans: Lane, names: &[&str]) -> Vec<Lane> {
    spans.sort_by(|a, b| a.1.total_cmp(&b.1).then(names[a.0].cmp(names[b.0])));
    let mut lanes: Vec<Lane> = Vec::new();
    for span in spans {
        match lanes
            .iter_mut()
            .find(|lane| lane.last().is_none_or(|last| last.2 <= span.1 + 1e-6))
        {
            Some(lane) => lane.push(span),
            None => lanes.push(vec![span]),
        }
    }
    lanes
}

fn chart(page: &mut String, summary: &Summary, images: &[Image], end: f64) {
    let names: Vec<&str> = images.iter().map(|i| i.entry.name.as_str()).collect();
    let x = |t: f64| LABEL_WIDTH + t / end * CHART_WIDTH;
    let groups = build_lanes(summary, images, &names);
    let pushes = push_lanes(images, &names);
    let tags = summary
        .timing
        .as_ref()
        .and_then(|t| t.tags_moved_from.zip(t.tags_moved_to));
    let chips = unplaced(images, &names);
    let per_row = (CHART_WIDTH / CHIP_WIDTH).floor().max(1.0) as usize;
    let chip_rows = chips.len().div_ceil(per_row);

    let lanes_height = lanes_height(&groups, &pushes, tags.is_some());
    let chips_top = AXIS + lanes_height + if chips.is_empty() { 0.0 } else { 24.0 };
    let height = chips_top + chip_rows as f64 * LANE + 10.0;
    let width = LABEL_WIDTH + CHART_WIDTH + 20.0;
    let _ = writeln!(
        page,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"timeline of the run\">"
    );
    axis(page, end, lanes_height, x);
    let y = build_rows(page, &groups, images, AXIS, x);
    let y = push_rows(page, &pushes, images, y, x);
    if let Some((from, to)) = tags {
        tag_move_row(page, from, to, y, x);
    }
    unplaced_chips(page, &chips, images, chips_top, per_row);
    page.push_str("</svg>\n");
}

/// The build lanes, grouped per engine: the run's engines in order (a lane even when idle),
/// then any other an image names, then the images whose engine is unknown.
fn build_lanes(summary: &Summary, images: &[Image], names: &[&str]) -> Vec<Group> {
    let mut engines: Vec<String> = summary
        .timing
        .iter()
        .flat_map(|t| t.engines.iter().map(|e| e.url.clone()))
        .collect();
    for image in images.iter().filter(|i| i.span.is_some()) {
        let engine = image.engine.unwrap_or(NOT_RECORDED).to_string();
        if !engines.contains(&engine) {
            engines.push(engine);
        }
    }
    engines
        .iter()
        .map(|engine| Group {
            title: engine.clone(),
            lanes: pack(
                images
                    .iter()
                    .enumerate()
                    .filter(|(_, i)| i.engine.unwrap_or(NOT_RECORDED) == engine)
                    .filter_map(|(n, i)| i.span.map(|(s, e)| (n, s, e)))
                    .collect(),
                names,
            ),
        })
        .collect()
}

/// The pushes, packed into lanes of their own.
fn push_lanes(images: &[Image], names: &[&str]) -> Vec<Lane> {
    pack(
        images
            .iter()
            .enumerate()
            .filter_map(|(n, i)| Some((n, i.entry.push_started_at?, i.entry.pushed_at?)))
            .collect(),
        names,
    )
}

/// The images that took no build slot, by outcome and then name.
fn unplaced(images: &[Image], names: &[&str]) -> Vec<usize> {
    let mut chips: Vec<usize> = (0..images.len())
        .filter(|&n| images[n].span.is_none())
        .collect();
    chips.sort_by_key(|&n| (images[n].kind, names[n]));
    chips
}

/// The height of all the lanes: builds, pushes and the tag move, with a gap after each group.
fn lanes_height(groups: &[Group], pushes: &[Lane], tags_moved: bool) -> f64 {
    groups
        .iter()
        .map(|g| g.lanes.len().max(1) as f64 * LANE + GROUP_GAP)
        .sum::<f64>()
        + if pushes.is_empty() {
            0.0
        } else {
            pushes.len() as f64 * LANE + GROUP_GAP
        }
        + if tags_moved { LANE + GROUP_GAP } else { 0.0 }
}

/// Draws the build lanes from `y` down, a bar per build; returns the `y` below them.
fn build_rows(
    page: &mut String,
    groups: &[Group],
    images: &[Image],
    mut y: f64,
    x: impl Fn(f64) -> f64,
) -> f64 {
    // An engine that built nothing still shows one (empty) slot.
    let idle = [Lane::new()];
    for group in groups {
        let lanes = if group.lanes.is_empty() {
            &idle[..]
        } else {
            &group.lanes[..]
        };
        for (slot, lane) in lanes.iter().enumerate() {
            lane_label(page, y, &format!("{} · slot {}", group.title, slot + 1));
            for &(n, start, stop) in lane {
                bar(page, &images[n], x(start), x(stop), y);
            }
            y += LANE;
        }
        y += GROUP_GAP;
    }
    y
}

/// Draws the push lanes from `y` down; returns the `y` below them.
fn push_rows(
    page: &mut String,
    pushes: &[Lane],
    images: &[Image],
    mut y: f64,
    x: impl Fn(f64) -> f64,
) -> f64 {
    for (slot, lane) in pushes.iter().enumerate() {
        lane_label(page, y, &format!("pushes · {}", slot + 1));
        for &(n, start, stop) in lane {
            let entry = images[n].entry;
            let _ = writeln!(
                page,
                "<rect class=\"push\" data-push=\"{}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" \
                 height=\"{:.1}\"><title>push of {}: {} from {}</title></rect>",
                escape(&entry.name),
                x(start),
                y + 5.0,
                (x(stop) - x(start)).max(2.0),
                LANE - 10.0,
                escape(&entry.name),
                escape(entry.push.as_deref().unwrap_or("?")),
                moment(start),
            );
        }
        y += LANE;
    }
    if !pushes.is_empty() {
        y += GROUP_GAP;
    }
    y
}

/// Draws the lane of the atomic push's final tag move, from `from` to `to`, at `y`.
fn tag_move_row(page: &mut String, from: f64, to: f64, y: f64, x: impl Fn(f64) -> f64) {
    lane_label(page, y, "final tags moved");
    let _ = writeln!(
        page,
        "<rect class=\"tags\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\">\
         <title>the atomic push moved the final tags from {} to {}</title></rect>",
        x(from),
        y + 4.0,
        (x(to) - x(from)).max(2.0),
        LANE - 8.0,
        moment(from),
        moment(to)
    );
}

/// Draws the images that took no build slot as chips below the lanes, `per_row` to a row.
fn unplaced_chips(
    page: &mut String,
    chips: &[usize],
    images: &[Image],
    chips_top: f64,
    per_row: usize,
) {
    if !chips.is_empty() {
        let _ = writeln!(
            page,
            "<text class=\"group\" x=\"8\" y=\"{:.1}\">took no build slot \
             (fresh, skipped, not built)</text>",
            chips_top - 8.0
        );
    }
    for (k, &n) in chips.iter().enumerate() {
        let left = LABEL_WIDTH + (k % per_row) as f64 * CHIP_WIDTH;
        let top = chips_top + (k / per_row) as f64 * LANE;
        bar(page, &images[n], left, left + CHIP_WIDTH - 6.0, top);
    }
}

fn axis(page: &mut String, end: f64, lanes_height: f64, x: impl Fn(f64) -> f64) {
    let step = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
    ]
    .into_iter()
    .find(|s| end / s <= 12.0)
    .unwrap_or(7200.0);
    let mut t = 0.0;
    while t <= end + 1e-9 {
        let _ = writeln!(
            page,
            "<line class=\"tick\" x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1}\" y2=\"{2:.1}\"/>\
             <text class=\"tick\" x=\"{0:.1}\" y=\"{3}\">{4}</text>",
            x(t),
            AXIS - 4.0,
            AXIS + lanes_height,
            AXIS - 8.0,
            clock(t)
        );
        t += step;
    }
}

fn lane_label(page: &mut String, y: f64, text: &str) {
    let shown = clip(text, (LABEL_WIDTH - 14.0) / CHAR_WIDTH);
    let _ = writeln!(
        page,
        "<text class=\"lane\" x=\"8\" y=\"{:.1}\">{}<title>{}</title></text>",
        y + LANE * 0.7,
        escape(&shown),
        escape(text)
    );
}

/// One image: a `<g data-image>` with its rectangle, its name where it fits, and its times.
fn bar(page: &mut String, image: &Image, left: f64, right: f64, top: f64) {
    let entry = image.entry;
    let width = (right - left).max(3.0);
    let mut classes = format!("bar {}", image.kind.class());
    if image.critical {
        classes.push_str(" critical");
    }
    let parents = entry.parents.join(" ");
    let _ = write!(
        page,
        "<g class=\"{classes}\" data-image=\"{}\" data-outcome=\"{}\" data-critical=\"{}\" \
         data-parents=\"{}\" tabindex=\"0\"><rect x=\"{left:.1}\" y=\"{:.1}\" width=\"{width:.1}\" \
         height=\"{:.1}\" rx=\"2\"/>",
        escape(&entry.name),
        image.kind.class(),
        image.critical,
        escape(&parents),
        top + 2.0,
        LANE - 4.0,
    );
    let room = (width - 6.0) / CHAR_WIDTH;
    if room >= 3.0 {
        let _ = write!(
            page,
            "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            left + 3.0,
            top + LANE * 0.68,
            escape(&clip(&entry.name, room))
        );
    }
    let _ = writeln!(page, "<title>{}</title></g>", escape(&describe(image)));
}

/// The bar's tooltip and the details panel: what happened to the image, when.
fn describe(image: &Image) -> String {
    let entry = image.entry;
    let mut lines = vec![format!("{}: {}", entry.name, image.kind.label())];
    if let Some((start, end)) = image.span {
        lines.push(format!(
            "build {} from {} to {}{}",
            duration(build_seconds(entry)),
            moment(start),
            moment(end),
            match entry.attempts {
                Some(n) if n > 1 => format!(" ({n} attempts)"),
                _ => String::new(),
            }
        ));
        if let Some(queued) = entry.queued_at {
            lines.push(format!(
                "could start at {} (its parents done); waited {} for a slot",
                moment(queued),
                duration((start - queued).max(0.0))
            ));
        }
    } else if let Some(end) = entry.finished_at {
        lines.push(format!("decided at {}", moment(end)));
    }
    if let Some(engine) = image.engine.filter(|_| image.span.is_some()) {
        lines.push(format!("on {engine}"));
    }
    if let Some(parent) = &entry.parent {
        lines.push(format!("parent `{parent}` failed"));
    }
    if let Some(error) = &entry.error {
        lines.push(format!(
            "error: {}",
            error.lines().next().unwrap_or_default()
        ));
    }
    if let Some(push) = &entry.push {
        let when = match (entry.push_started_at, entry.pushed_at) {
            (Some(from), Some(to)) => format!(" from {} to {}", moment(from), moment(to)),
            _ => String::new(),
        };
        lines.push(format!("push: {push}{when}"));
    }
    if let Some(at) = entry.tag_moved_at {
        lines.push(format!("final tag in place at {}", moment(at)));
    }
    if let Some(bytes) = entry.network_bytes {
        lines.push(format!("{} from the package caches", size(bytes)));
    }
    lines.push(if entry.parents.is_empty() {
        "built on: nothing of this run".to_string()
    } else {
        format!("built on: {}", entry.parents.join(", "))
    });
    if image.critical {
        lines.push("on the critical path".into());
    }
    lines.join("\n")
}

/// `text` cut to `chars` characters, with an ellipsis when cut.
fn clip(text: &str, chars: f64) -> String {
    let max = chars.max(1.0) as usize;
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// A length of time: `4.2 s`, `3 min 05 s`, `1 h 02 min`.
fn duration(seconds: f64) -> String {
    if seconds < 100.0 {
        format!("{seconds:.1} s")
    } else if seconds < 3600.0 {
        let s = seconds.round() as u64;
        format!("{} min {:02} s", s / 60, s % 60)
    } else {
        let m = (seconds / 60.0).round() as u64;
        format!("{} h {:02} min", m / 60, m % 60)
    }
}

/// Bytes as people read them: `2.5 MB`, `7.6 GB`.
fn size(bytes: u64) -> String {
    let mb = bytes as f64 / 1e6;
    if mb < 1000.0 {
        format!("{mb:.1} MB")
    } else {
        format!("{:.1} GB", mb / 1000.0)
    }
}

/// A point in the run in the details: tenths of seconds in the first ten minutes.
fn moment(seconds: f64) -> String {
    if seconds < 600.0 {
        format!("{seconds:.1}s")
    } else {
        clock(seconds)
    }
}

/// A point in the run, as the axis shows it: `45s`, `2:30`, `1:02:00`.
fn clock(seconds: f64) -> String {
    let s = seconds.round() as u64;
    if s < 60 && seconds < 59.95 {
        format!("{seconds:.0}s")
    } else if s < 3600 {
        format!("{}:{:02}", s / 60, s % 60)
    } else {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    }
}

/// Text and attribute values (the same escaping serves both).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failed run on one engine with two slots: base ← mid ← leaf built, side fresh, broken
    /// failed and its child not built, pushes, and a name to escape.
    fn summary() -> Summary {
        serde_json::from_str(
            r#"{
              "status": "failed",
              "timing": {"started": "2026-12-07T09:00:00Z", "wall_seconds": 30.0,
                         "cpu_seconds": 36.0, "cpus": 2,
                         "engines": [{"url": "unix:///var/run/docker.sock", "threads": 2}]},
              "built": [
                {"name": "base", "status": "built", "seconds": 5.0, "queued_at": 0.5,
                 "started_at": 1.0, "finished_at": 6.0, "push": "pushed",
                 "push_started_at": 6.0, "pushed_at": 8.0},
                {"name": "mid", "status": "built", "parents": ["base"], "queued_at": 6.0,
                 "started_at": 6.0, "finished_at": 16.0},
                {"name": "leaf", "status": "built", "parents": ["mid"], "queued_at": 16.0,
                 "started_at": 16.5, "finished_at": 26.0, "network_bytes": 2500000},
                {"name": "side", "status": "fresh", "parents": ["base"], "finished_at": 0.6}
              ],
              "failed": [
                {"name": "broken", "status": "error", "parents": ["base"], "error": "RUN exited 3",
                 "queued_at": 6.0, "started_at": 6.0, "finished_at": 9.0},
                {"name": "<child>", "status": "parent_error", "parent": "broken",
                 "parents": ["broken"], "finished_at": 9.0}
              ]
            }"#,
        )
        .unwrap()
    }

    /// (name, outcome, critical) of every bar, in page order.
    fn bars(page: &str) -> Vec<(String, String, bool)> {
        let re = regex::Regex::new(
            r#"<g class="[^"]*" data-image="([^"]*)" data-outcome="([^"]*)" data-critical="(true|false)""#,
        )
        .unwrap();
        re.captures_iter(page)
            .map(|c| (c[1].to_string(), c[2].to_string(), &c[3] == "true"))
            .collect()
    }

    #[test]
    fn every_image_is_one_bar_with_its_outcome_and_the_critical_path_is_marked() {
        let page = html(&summary());
        let mut got = bars(&page);
        got.sort();
        let want = [
            ("&lt;child&gt;", "parent-failed", false),
            ("base", "built", true),
            ("broken", "failed", false),
            ("leaf", "built", true),
            ("mid", "built", true),
            ("side", "fresh", false),
        ]
        .map(|(n, o, c)| (n.to_string(), o.to_string(), c));
        assert_eq!(got, want);
        assert!(
            page.contains("base → mid → leaf"),
            "the header names the path"
        );
    }

    #[test]
    fn the_header_sets_wall_time_against_the_cpu_floor() {
        let page = html(&summary());
        assert!(page.contains("<dd>30.0 s</dd>"), "wall time");
        // 36 CPU-seconds on 2 CPUs: an 18 s floor, and 30 s of wall time is 1.67 of it.
        assert!(page.contains("18.0 s (36 CPU-seconds of the host on 2 CPUs)"));
        assert!(page.contains("<strong id=\"ratio\">1.67x</strong>"));
        // Built and failed builds: 5 + 10 + 9.5 + 3.
        assert!(page.contains("27.5 s (0.92 builds at once on average)"));
        assert!(page.contains("2.5 MB"));
    }

    #[test]
    fn builds_that_overlap_take_separate_slots_of_their_engine() {
        let page = html(&summary());
        let needle = "docker.sock · slot ";
        let slots: Vec<&str> = page
            .match_indices(needle)
            .map(|(i, _)| &page[i + needle.len()..i + needle.len() + 1])
            .filter(|s| s.parse::<u32>().is_ok())
            .collect();
        // mid and broken run together from 6 s: two slots, no third.
        assert!(slots.contains(&"2") && !slots.contains(&"3"), "{slots:?}");
        assert!(
            page.contains("data-push=\"base\""),
            "base's push has its own lane"
        );
    }

    #[test]
    fn the_page_loads_nothing_from_anywhere() {
        let page = html(&summary());
        for needle in ["http://", "https://", "src=", "@import", "url("] {
            let outside = page
                .match_indices(needle)
                .filter(|(i, _)| !page[*i..].starts_with("http://www.w3.org/2000/svg"))
                .count();
            assert_eq!(outside, 0, "`{needle}` in the page");
        }
    }

    #[test]
    fn a_summary_without_times_lists_every_image_unplaced() {
        let old: Summary = serde_json::from_str(
            r#"{"status": "success", "built": [{"name": "base", "status": "built", "seconds": 4.0},
                {"name": "cron", "status": "fresh", "parents": ["base"]}]}"#,
        )
        .unwrap();
        let page = html(&old);
        assert_eq!(bars(&page).len(), 2);
        assert!(page.contains("this summary has none"));
        assert!(
            page.contains("4.0 s: base"),
            "the path from the summary's seconds"
        );
    }

    #[test]
    fn an_earlier_runs_summary_file_draws_the_same_page() {
        let dir = tempfile::tempdir().unwrap();
        let (json, out) = (dir.path().join("s.json"), dir.path().join("r.html"));
        std::fs::write(&json, serde_json::to_string(&summary()).unwrap()).unwrap();
        write_from_summary_file(&json, &out).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), html(&summary()));
        std::fs::write(&json, "[1, 2]").unwrap();
        let err = write_from_summary_file(&json, &out)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("s.json") && err.contains("--summary-json-file"),
            "{err}"
        );
    }

    #[test]
    fn times_read_as_durations_and_clock_positions() {
        assert_eq!(duration(4.24), "4.2 s");
        assert_eq!(duration(185.0), "3 min 05 s");
        assert_eq!(duration(3720.0), "1 h 02 min");
        assert_eq!(clock(45.0), "45s");
        assert_eq!(clock(150.0), "2:30");
        assert_eq!(clock(3720.0), "1:02:00");
        assert_eq!(moment(2.54), "2.5s");
        assert_eq!(moment(725.0), "12:05");
        assert_eq!(clip("keystone-base", 5.0), "keys…");
        assert_eq!(size(2_500_000), "2.5 MB");
        assert_eq!(size(7_604_500_000), "7.6 GB");
        assert_eq!(escape("<a \"b\">&"), "&lt;a &quot;b&quot;&gt;&amp;");
    }
}
