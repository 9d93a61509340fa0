//! Statistics of ratings: per subject (a control body, an inspector), per criterion, per month
//! and overall — count, mean, median, the distribution of 1..=10, the share below 5 with the
//! most frequent reasons. `compute` is a pure fold of score rows; `csv` and `svg` render its
//! result. Names are not here: the caller labels subjects after deciding who may see them.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::model::FOLLOW_UP_BELOW;

/// How many reasons a summary names.
pub const TOP_REASONS: usize = 3;

/// One score of a current rating, with what it is grouped by.
#[derive(Debug, Clone)]
pub struct ScoreRow {
    /// Who is rated (a control body's or an inspector's id, or the business's INN).
    pub subject: String,
    /// The rated inspection (ratings are counted once per inspection).
    pub inspection: String,
    /// The criterion's code.
    pub criterion: String,
    /// `YYYY-MM`.
    pub month: String,
    /// 1..=10.
    pub score: u8,
    /// Follow-up choice codes.
    pub reasons: Vec<String>,
}

/// How often a reason was given.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReasonCount {
    /// The choice's code.
    pub reason: String,
    /// How many scores gave it.
    pub count: u32,
}

/// The numbers of a set of scores.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Summary {
    /// How many scores.
    pub count: u32,
    /// Their mean, to two decimals.
    pub mean: f64,
    /// Their median.
    pub median: f64,
    /// How many of each score: index 0 is score 1, index 9 score 10.
    #[schema(value_type = Vec<u32>)]
    pub distribution: [u32; 10],
    /// The share of scores below 5, 0..=1, to three decimals.
    pub share_below_5: f64,
    /// The most frequent reasons of the scores below 5, most frequent first.
    pub top_reasons: Vec<ReasonCount>,
}

/// One month of a criterion.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MonthStats {
    /// `YYYY-MM`.
    pub month: String,
    /// Its numbers.
    #[serde(flatten)]
    pub summary: Summary,
}

/// One criterion of a subject.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CriterionStats {
    /// The criterion's code.
    pub criterion: String,
    /// All months together.
    pub overall: Summary,
    /// Month by month, oldest first.
    pub months: Vec<MonthStats>,
}

/// The statistics of one subject, before it is labelled.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectStats {
    /// The subject's key (as in [`ScoreRow::subject`]).
    pub subject: String,
    /// How many ratings (inspections).
    pub ratings: u32,
    /// Per criterion, in code order.
    pub criteria: Vec<CriterionStats>,
}

#[derive(Default)]
struct Acc {
    distribution: [u32; 10],
    reasons: HashMap<String, u32>,
}

impl Acc {
    fn add(&mut self, r: &ScoreRow) {
        let i = usize::from(r.score.clamp(1, 10)) - 1;
        self.distribution[i] += 1;
        if r.score < FOLLOW_UP_BELOW {
            for reason in &r.reasons {
                *self.reasons.entry(reason.clone()).or_default() += 1;
            }
        }
    }

    fn merge(&mut self, other: &Acc) {
        for (a, b) in self.distribution.iter_mut().zip(other.distribution) {
            *a += b;
        }
        for (k, v) in &other.reasons {
            *self.reasons.entry(k.clone()).or_default() += v;
        }
    }

    fn summary(&self) -> Summary {
        let count: u32 = self.distribution.iter().sum();
        let total: u64 = self
            .distribution
            .iter()
            .enumerate()
            .map(|(i, n)| (i as u64 + 1) * u64::from(*n))
            .sum();
        let below: u32 = self.distribution[..usize::from(FOLLOW_UP_BELOW) - 1]
            .iter()
            .sum();
        let mut top: Vec<ReasonCount> = self
            .reasons
            .iter()
            .map(|(k, v)| ReasonCount {
                reason: k.clone(),
                count: *v,
            })
            .collect();
        top.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
        top.truncate(TOP_REASONS);
        let round = |v: f64, places: i32| {
            let f = 10f64.powi(places);
            (v * f).round() / f
        };
        Summary {
            count,
            mean: if count == 0 {
                0.0
            } else {
                round(total as f64 / f64::from(count), 2)
            },
            median: median(&self.distribution),
            distribution: self.distribution,
            share_below_5: if count == 0 {
                0.0
            } else {
                round(f64::from(below) / f64::from(count), 3)
            },
            top_reasons: top,
        }
    }
}

/// The numbers of scores given as counts of 1..=10 (no reasons).
pub fn summarize(distribution: [u32; 10]) -> Summary {
    Acc {
        distribution,
        reasons: HashMap::new(),
    }
    .summary()
}

/// The median of scores given as counts of 1..=10 (the mean of the two middle ones for an
/// even count).
fn median(distribution: &[u32; 10]) -> f64 {
    let count: u32 = distribution.iter().sum();
    if count == 0 {
        return 0.0;
    }
    // The k-th smallest score, k counted from 0.
    let nth = |k: u32| {
        let mut seen = 0;
        for (i, n) in distribution.iter().enumerate() {
            seen += n;
            if seen > k {
                return i as f64 + 1.0;
            }
        }
        10.0
    };
    if count % 2 == 1 {
        nth(count / 2)
    } else {
        (nth(count / 2 - 1) + nth(count / 2)) / 2.0
    }
}

/// Folds score rows into per-subject, per-criterion, per-month statistics, subjects in key
/// order: each row a cell of one score, folded by [`compute_cells`] (the server reads cells
/// the database counted; this is the same fold from single scores).
pub fn compute(rows: &[ScoreRow]) -> Vec<SubjectStats> {
    let mut inspections: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    let cells: Vec<Cell> = rows
        .iter()
        .map(|r| {
            inspections
                .entry(r.subject.as_str())
                .or_default()
                .insert(r.inspection.as_str());
            let mut acc = Acc::default();
            acc.add(r);
            Cell {
                subject: r.subject.clone(),
                criterion: r.criterion.clone(),
                month: r.month.clone(),
                distribution: acc.distribution,
                reasons: acc.reasons.into_iter().collect(),
            }
        })
        .collect();
    let ratings = inspections
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.len() as u32))
        .collect();
    compute_cells(&cells, &ratings)
}

/// Scores of one subject, criterion and month already counted (by the database): how many
/// of each score, and how often each reason of the scores below 5 was given.
#[derive(Debug, Clone, Default)]
pub struct Cell {
    /// Who is rated.
    pub subject: String,
    /// The criterion's code.
    pub criterion: String,
    /// `YYYY-MM`.
    pub month: String,
    /// Counts of 1..=10.
    pub distribution: [u32; 10],
    /// Reason codes with their counts.
    pub reasons: Vec<(String, u32)>,
}

/// [`compute`] over counted cells; `ratings` is how many ratings each subject has. The same
/// result as folding the rows the cells count.
pub fn compute_cells(cells: &[Cell], ratings: &BTreeMap<String, u32>) -> Vec<SubjectStats> {
    let mut by: BTreeMap<&str, BTreeMap<&str, BTreeMap<&str, Acc>>> = BTreeMap::new();
    for c in cells {
        let acc = by
            .entry(c.subject.as_str())
            .or_default()
            .entry(c.criterion.as_str())
            .or_default()
            .entry(c.month.as_str())
            .or_default();
        for (a, b) in acc.distribution.iter_mut().zip(c.distribution) {
            *a += b;
        }
        for (r, n) in &c.reasons {
            *acc.reasons.entry(r.clone()).or_default() += n;
        }
    }
    by.into_iter()
        .map(|(subject, criteria)| SubjectStats {
            subject: subject.to_string(),
            ratings: ratings.get(subject).copied().unwrap_or(0),
            criteria: criteria
                .into_iter()
                .map(|(criterion, months)| {
                    let mut all = Acc::default();
                    for acc in months.values() {
                        all.merge(acc);
                    }
                    CriterionStats {
                        criterion: criterion.to_string(),
                        overall: all.summary(),
                        months: months
                            .iter()
                            .map(|(m, acc)| MonthStats {
                                month: m.to_string(),
                                summary: acc.summary(),
                            })
                            .collect(),
                    }
                })
                .collect(),
        })
        .collect()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The header of [`csv_rows`].
pub const CSV_HEADER: &str = "level,subject,criterion,month,count,mean,median,share_below_5,\
d1,d2,d3,d4,d5,d6,d7,d8,d9,d10,top_reasons";

/// CSV lines of labelled statistics: one per subject, criterion and month, and one with month
/// `all`.
pub fn csv_rows(out: &mut String, level: &str, label: &str, s: &SubjectStats) {
    for c in &s.criteria {
        let months = std::iter::once(("all", &c.overall))
            .chain(c.months.iter().map(|m| (m.month.as_str(), &m.summary)));
        for (month, sum) in months {
            let d: Vec<String> = sum.distribution.iter().map(u32::to_string).collect();
            let reasons: Vec<String> = sum
                .top_reasons
                .iter()
                .map(|r| format!("{}:{}", r.reason, r.count))
                .collect();
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{}\n",
                level,
                csv_field(label),
                csv_field(&c.criterion),
                month,
                sum.count,
                sum.mean,
                sum.median,
                sum.share_below_5,
                d.join(","),
                csv_field(&reasons.join(";")),
            ));
        }
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A horizontal bar chart (SVG) of each criterion's mean score out of 10, with its count and
/// share below 5; `title` and criterion titles already in the reader's language.
pub fn svg(title: &str, bars: &[(String, &Summary)]) -> String {
    const W: usize = 640;
    const LABEL: usize = 260;
    const BAR: usize = 300;
    const ROW: usize = 34;
    let h = 48 + ROW * bars.len().max(1);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{h}\" \
         viewBox=\"0 0 {W} {h}\" role=\"img\" aria-label=\"{t}\" font-family=\"sans-serif\" \
         font-size=\"13\"><title>{t}</title>\
         <text x=\"8\" y=\"22\" font-size=\"15\" font-weight=\"bold\">{t}</text>",
        t = xml_escape(title)
    );
    for tick in [0, 5, 10] {
        let x = LABEL + BAR * tick / 10;
        s.push_str(&format!(
            "<line x1=\"{x}\" y1=\"34\" x2=\"{x}\" y2=\"{}\" stroke=\"#ccc\"/>\
             <text x=\"{x}\" y=\"{}\" text-anchor=\"middle\" fill=\"#666\" font-size=\"11\">{tick}</text>",
            h - 12,
            h - 2
        ));
    }
    for (i, (label, sum)) in bars.iter().enumerate() {
        let y = 38 + ROW * i;
        let width = (sum.mean / 10.0 * BAR as f64)
            .round()
            .clamp(0.0, BAR as f64) as usize;
        let colour = if sum.mean < f64::from(FOLLOW_UP_BELOW) {
            "#c0392b"
        } else if sum.mean < 7.5 {
            "#e0a100"
        } else {
            "#2e7d32"
        };
        s.push_str(&format!(
            "<g class=\"bar\" data-criterion=\"{l}\"><text x=\"8\" y=\"{ty}\">{l}</text>\
             <rect x=\"{LABEL}\" y=\"{y}\" width=\"{width}\" height=\"20\" fill=\"{colour}\"/>\
             <text x=\"{tx}\" y=\"{ty}\">{mean:.2} · n={n} · &lt;5: {share:.0}%</text></g>",
            l = xml_escape(label),
            ty = y + 15,
            tx = LABEL + width + 6,
            mean = sum.mean,
            n = sum.count,
            share = sum.share_below_5 * 100.0,
        ));
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(subject: &str, insp: &str, c: &str, m: &str, score: u8, reasons: &[&str]) -> ScoreRow {
        ScoreRow {
            subject: subject.into(),
            inspection: insp.into(),
            criterion: c.into(),
            month: m.into(),
            score,
            reasons: reasons.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn numbers_of_a_criterion() {
        let rows = vec![
            row(
                "a",
                "1",
                "courtesy",
                "2026-01",
                3,
                &["rude_tone", "pressure"],
            ),
            row("a", "2", "courtesy", "2026-01", 4, &["rude_tone"]),
            row("a", "3", "courtesy", "2026-02", 9, &[]),
            row("a", "4", "courtesy", "2026-02", 10, &[]),
            row("a", "4", "clarity", "2026-02", 8, &[]),
            row("b", "5", "courtesy", "2026-02", 7, &[]),
        ];
        let s = compute(&rows);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].subject, "a");
        assert_eq!(s[0].ratings, 4);
        let courtesy = &s[0].criteria[1];
        assert_eq!(courtesy.criterion, "courtesy");
        let o = &courtesy.overall;
        assert_eq!(o.count, 4);
        assert_eq!(o.mean, 6.5);
        assert_eq!(o.median, 6.5);
        assert_eq!(o.distribution, [0, 0, 1, 1, 0, 0, 0, 0, 1, 1]);
        assert_eq!(o.share_below_5, 0.5);
        assert_eq!(
            o.top_reasons,
            vec![
                ReasonCount {
                    reason: "rude_tone".into(),
                    count: 2
                },
                ReasonCount {
                    reason: "pressure".into(),
                    count: 1
                },
            ]
        );
        assert_eq!(courtesy.months.len(), 2);
        assert_eq!(courtesy.months[0].month, "2026-01");
        assert_eq!(courtesy.months[0].summary.mean, 3.5);
        assert_eq!(courtesy.months[1].summary.median, 9.5);
        assert_eq!(s[1].criteria[0].overall.median, 7.0);
    }

    #[test]
    fn counted_cells_give_what_rows_give() {
        let rows = vec![
            row(
                "a",
                "1",
                "courtesy",
                "2026-01",
                3,
                &["rude_tone", "pressure"],
            ),
            row("a", "2", "courtesy", "2026-01", 3, &["rude_tone"]),
            row("a", "3", "courtesy", "2026-02", 9, &[]),
        ];
        let mut d1 = [0; 10];
        d1[2] = 2;
        let mut d2 = [0; 10];
        d2[8] = 1;
        let cells = vec![
            Cell {
                subject: "a".into(),
                criterion: "courtesy".into(),
                month: "2026-01".into(),
                distribution: d1,
                reasons: vec![("rude_tone".into(), 2), ("pressure".into(), 1)],
            },
            Cell {
                subject: "a".into(),
                criterion: "courtesy".into(),
                month: "2026-02".into(),
                distribution: d2,
                reasons: vec![],
            },
        ];
        let counts = BTreeMap::from([("a".to_string(), 3)]);
        assert_eq!(compute_cells(&cells, &counts), compute(&rows));
    }

    #[test]
    fn medians_of_counts() {
        let mut d = [0; 10];
        assert_eq!(median(&d), 0.0);
        d[0] = 1;
        assert_eq!(median(&d), 1.0);
        d[9] = 2;
        assert_eq!(median(&d), 10.0);
        d[4] = 1;
        assert_eq!(median(&d), 7.5);
    }

    #[test]
    fn csv_quotes_and_svg_escapes() {
        let s = compute(&[row("a", "1", "courtesy", "2026-01", 2, &["x"])]);
        let mut out = String::new();
        csv_rows(&mut out, "control_body", "Орган, \"главный\"", &s[0]);
        assert!(
            out.starts_with("control_body,\"Орган, \"\"главный\"\"\",courtesy,all,1,2,2,1,0,1,0")
        );
        assert_eq!(out.lines().count(), 2);
        let svg = svg("<t>", &[("a&b".into(), &s[0].criteria[0].overall)]);
        assert!(svg.contains("&lt;t&gt;") && svg.contains("a&amp;b"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
