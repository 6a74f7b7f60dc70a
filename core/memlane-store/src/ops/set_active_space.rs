//! `set_active_space`: a state-only commit.

use super::{Staged, state_only_op};

/// Stage `set_active_space` into `staged`.
pub(super) fn stage(staged: &mut Staged) {
    staged.op = state_only_op(&staged.state);
}
