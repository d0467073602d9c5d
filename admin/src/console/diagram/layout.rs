//! Where everything of a diagram sits, in SVG user units: a pure function of how many nodes each side has, so
//! that the page and its tests agree. The agent is in the centre column, clients in the left one, LLM, enterprise
//! and external nodes in the right one; a column grows downwards one row per node (50 a side stays a tall but
//! readable page, never a smaller font).

/// Width of the drawing.
pub const WIDTH: u32 = 1000;
/// A node's box.
pub const NODE_W: u32 = 180;
/// A node's box.
pub const NODE_H: u32 = 44;
/// From one row's top to the next's.
pub const PITCH: u32 = 60;
/// Above the first row.
pub const TOP: u32 = 24;
/// Below the last row (room for the "+" controls under the agent).
pub const BOTTOM: u32 = 72;
/// Left column's left edge.
pub const LEFT_X: u32 = 20;
/// Centre column's left edge.
pub const AGENT_X: u32 = (WIDTH - NODE_W) / 2;
/// Right column's left edge.
pub const RIGHT_X: u32 = WIDTH - 20 - NODE_W;
/// The agent's box is taller than the others.
pub const AGENT_H: u32 = 64;
/// Radius of a "+" control.
pub const PLUS_R: u32 = 14;
/// An edge label's box: two lines of small text beside the node it leads to.
pub const LABEL_W: u32 = 196;
/// An edge label's box.
pub const LABEL_H: u32 = 30;

/// An axis-aligned box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left.
    pub x: u32,
    /// Top.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

/// The positions of one diagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The drawing's height (its width is [`WIDTH`]).
    pub height: u32,
    /// The agent's box.
    pub agent: Rect,
    /// The left column's boxes, top to bottom.
    pub left: Vec<Rect>,
    /// The right column's boxes, top to bottom.
    pub right: Vec<Rect>,
    /// The left column's edge labels (beside each node, towards the agent).
    pub left_labels: Vec<Rect>,
    /// The right column's edge labels.
    pub right_labels: Vec<Rect>,
    /// The "+" controls' bounding boxes: left (add a client), right (add an LLM, enterprise or external node).
    pub plus: [Rect; 2],
}

// === impl Rect ===

impl Rect {
    /// Whether the two boxes share any area.
    pub fn overlaps(&self, other: &Rect) -> bool {
        self.x < other.x + other.w
            && other.x < self.x + self.w
            && self.y < other.y + other.h
            && other.y < self.y + self.h
    }

    /// The middle of the left side.
    pub fn left_mid(&self) -> (u32, u32) {
        (self.x, self.y + self.h / 2)
    }

    /// The middle of the right side.
    pub fn right_mid(&self) -> (u32, u32) {
        (self.x + self.w, self.y + self.h / 2)
    }
}

/// Lays out an agent with `left` clients and `right` outbound nodes.
pub fn layout(left: usize, right: usize) -> Layout {
    let rows = u32::try_from(left.max(right).max(1)).unwrap_or(u32::MAX / PITCH);
    let body = rows.saturating_mul(PITCH);
    let height = TOP + body + BOTTOM;
    // The agent sits level with the middle of the rows (its "+" controls below it, above the bottom margin).
    let agent_y = TOP + (body.saturating_sub(AGENT_H)) / 2;
    let agent = Rect {
        x: AGENT_X,
        y: agent_y,
        w: NODE_W,
        h: AGENT_H,
    };
    let column = |n: usize, x: u32| -> Vec<Rect> {
        // A shorter column is centred against the taller one.
        let n32 = u32::try_from(n).unwrap_or(rows);
        let offset = (rows - n32.min(rows)) * PITCH / 2;
        (0..n32)
            .map(|i| Rect {
                x,
                y: TOP + offset + i * PITCH + (PITCH - NODE_H) / 2,
                w: NODE_W,
                h: NODE_H,
            })
            .collect()
    };
    let left_boxes = column(left, LEFT_X);
    let right_boxes = column(right, RIGHT_X);
    let label = |r: &Rect, to_right: bool| Rect {
        x: if to_right {
            r.x + r.w + 6
        } else {
            r.x - 6 - LABEL_W
        },
        y: r.y + r.h / 2 - LABEL_H / 2,
        w: LABEL_W,
        h: LABEL_H,
    };
    let left_labels = left_boxes.iter().map(|r| label(r, true)).collect();
    let right_labels = right_boxes.iter().map(|r| label(r, false)).collect();
    let plus_y = agent.y + agent.h + 10;
    let plus = [
        Rect {
            x: agent.x + 10,
            y: plus_y,
            w: 2 * PLUS_R,
            h: 2 * PLUS_R,
        },
        Rect {
            x: agent.x + agent.w - 10 - 2 * PLUS_R,
            y: plus_y,
            w: 2 * PLUS_R,
            h: 2 * PLUS_R,
        },
    ];
    Layout {
        height,
        agent,
        left: left_boxes,
        right: right_boxes,
        left_labels,
        right_labels,
        plus,
    }
}

/// How far an edge runs straight beside its node before it bends towards the agent: its label sits above and below
/// that run, so with many rows the bends (which crowd near the agent) cross no label text.
pub const RUN: u32 = 140;

/// An edge's SVG path (`d`) between a node's side `node` and the agent's side `agent`: straight for [`RUN`]
/// beside the node, then a curve to the agent. Drawn from the node, whichever side it is on.
pub fn edge_path(node: (u32, u32), agent: (u32, u32)) -> String {
    let (run_end, mid) = if node.0 < agent.0 {
        let end = (node.0 + RUN).min(agent.0);
        (end, end + (agent.0 - end) / 2)
    } else {
        let end = node.0.saturating_sub(RUN).max(agent.0);
        (end, agent.0 + (end - agent.0) / 2)
    };
    format!(
        "M{} {} H{run_end} C{mid} {} {mid} {} {} {}",
        node.0, node.1, node.1, agent.1, agent.0, agent.1
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_boxes(l: &Layout) -> Vec<(String, Rect)> {
        let mut boxes = vec![("agent".to_owned(), l.agent)];
        for (i, r) in l.left.iter().enumerate() {
            boxes.push((format!("left {i}"), *r));
        }
        for (i, r) in l.right.iter().enumerate() {
            boxes.push((format!("right {i}"), *r));
        }
        for (i, r) in l.left_labels.iter().enumerate() {
            boxes.push((format!("left label {i}"), *r));
        }
        for (i, r) in l.right_labels.iter().enumerate() {
            boxes.push((format!("right label {i}"), *r));
        }
        boxes.push(("plus left".into(), l.plus[0]));
        boxes.push(("plus right".into(), l.plus[1]));
        boxes
    }

    /// Nothing overlaps and everything is inside the drawing, for every count up to 60 a side.
    #[test]
    fn nothing_overlaps_up_to_sixty_a_side() {
        for (left, right) in [(0, 0), (1, 0), (0, 1), (1, 1), (3, 7), (50, 50), (60, 2)] {
            let l = layout(left, right);
            assert_eq!((l.left.len(), l.right.len()), (left, right));
            let boxes = all_boxes(&l);
            for (i, (a, ra)) in boxes.iter().enumerate() {
                assert!(
                    ra.x + ra.w <= WIDTH && ra.y + ra.h <= l.height,
                    "{left}+{right}: {a} {ra:?} leaves the {WIDTH}x{} drawing",
                    l.height
                );
                for (b, rb) in &boxes[i + 1..] {
                    assert!(
                        !ra.overlaps(rb),
                        "{left}+{right}: {a} {ra:?} overlaps {b} {rb:?}"
                    );
                }
            }
        }
    }

    /// 50 a side: the drawing grows downwards, the boxes keep their size.
    #[test]
    fn fifty_a_side_grows_downwards() {
        let l = layout(50, 50);
        assert_eq!(l.height, TOP + 50 * PITCH + BOTTOM);
        assert!(
            l.left
                .iter()
                .chain(&l.right)
                .all(|r| r.h == NODE_H && r.w == NODE_W)
        );
        // Rows are in order, a pitch apart.
        for w in l.left.windows(2) {
            assert_eq!(w[1].y - w[0].y, PITCH);
        }
    }

    /// An edge runs straight beside its node (under its label), then bends to the agent, on either side.
    #[test]
    fn edges_run_straight_beside_their_node() {
        let l = layout(1, 1);
        let left = edge_path(l.left[0].right_mid(), l.agent.left_mid());
        assert!(
            left.starts_with(&format!("M200 {} H340 C", l.left[0].y + NODE_H / 2)),
            "{left}"
        );
        assert!(
            left.ends_with(&format!("{AGENT_X} {}", l.agent.y + AGENT_H / 2)),
            "{left}"
        );
        let right = edge_path(l.right[0].left_mid(), l.agent.right_mid());
        assert!(
            right.starts_with(&format!(
                "M{RIGHT_X} {} H{} C",
                l.right[0].y + NODE_H / 2,
                RIGHT_X - RUN
            )),
            "{right}"
        );
    }

    #[test]
    fn overlap_is_detected() {
        let a = Rect {
            x: 0,
            y: 0,
            w: 10,
            h: 10,
        };
        assert!(a.overlaps(&Rect {
            x: 9,
            y: 9,
            w: 5,
            h: 5
        }));
        assert!(!a.overlaps(&Rect {
            x: 10,
            y: 0,
            w: 5,
            h: 5
        }));
    }
}
