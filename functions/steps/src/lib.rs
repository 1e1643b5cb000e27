//! What every ngm step shares. Steps observe the world through the ports of `ngm-core` into
//! plain structs, hand them to a pure planner, and execute the plan.

pub mod observe;
