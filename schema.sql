-- rsr ledger: one SQLite database per experiment.
--
-- Everything rsr knows about a run lives here: the prompts, every completion
-- (rollout) the model returned, every score a verifier gave, every sampling step
-- and every command that touched the ledger. Resume, early stop, statistics and
-- export are queries over these tables. Read this file top to bottom to learn the
-- data model; `datasette RUN.db` shows the same tables and views.
--
-- Conventions: timestamps are ISO-8601 UTC text; JSON columns hold JSON text;
-- booleans are 0/1 integers; token counts come from the engine, never estimated.
-- New databases are built from this file; older ones are upgraded by the
-- migrations in rsr/db.py so that both end up with the same shape.

-- The inputs: one row per prompt, after the loader's (or the user's) transform.
-- `messages` is the chat turns sent to the model; `metadata` holds everything
-- else, with `metadata.answer` as the gold answer where there is one.
create table if not exists prompts (
    id text primary key,
    messages text not null check (json_valid(messages)),
    metadata text not null default '{}' check (json_valid(metadata)),
    -- where the prompt came from: "file.jsonl:12"
    source text,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- Provenance: one row per rsr invocation that wrote to the ledger, with its full
-- configuration (secrets redacted), so a run can be reproduced and resumed.
create table if not exists runs (
    id integer primary key,
    command text not null,
    config text not null default '{}' check (json_valid(config)),
    rsr_version text,
    hostname text,
    pid integer,
    status text not null default 'running'
        check (status in ('running', 'finished', 'interrupted', 'failed', 'capped')),
    -- one line on how it ended: counts, or the error (or, for 'capped', the
    -- cost cap it reached: a resumed run with a higher cap continues)
    summary text,
    started_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at text,
    -- the command line as typed, a JSON list with secrets redacted
    -- (["rsr", "sample", "run.db", "--api-key", "***"]); NULL for a library call
    argv text check (argv is null or json_valid(argv)),
    -- what an in-process engine reported about the run, as JSON (vllm-async:
    -- {"occupancy": mean running sequences over the time it had work,
    -- "capacity": sequences it can run at once, "seconds", "requests"}); NULL
    -- for samplers that report nothing
    engine_stats text check (engine_stats is null or json_valid(engine_stats))
);

-- One row per completion, written the moment it arrives. (prompt_id, arm,
-- sample_index) is unique, so a retried write can never duplicate a rollout.
-- An arm names one sampling configuration (model, sampler, parameters): a
-- ledger can hold several, each with its own budget per prompt (rsr sample
-- --arm; by default the model's name).
-- `response` is the final answer only; `reasoning` is the chain of thought (from
-- <think> blocks or the API's reasoning_content), kept apart so verifiers never
-- grade it. `truncated` comes from the engine's finish_reason ("length").
-- A request that failed for good is a row with `error` set and no response: it
-- counts against the prompt's budget but never toward its target. So does an
-- empty answer (nothing but whitespace once reasoning is set apart): it is
-- kept, never scored, never exported.
create table if not exists rollouts (
    id integer primary key,
    prompt_id text not null references prompts(id),
    arm text not null default 'default',
    sample_index integer not null check (sample_index >= 0),
    step integer not null default 1 check (step >= 1),
    run_id integer references runs(id),
    model text,
    sampler text,
    params text check (params is null or json_valid(params)),
    seed integer,
    response text,
    reasoning text,
    finish_reason text,
    truncated integer not null default 0 check (truncated in (0, 1)),
    prompt_tokens integer,
    completion_tokens integer,
    latency_ms integer,
    error text,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- a hash of the response with whitespace runs collapsed: identical
    -- completions share it (NULL when unknown: then a rollout is its own kind)
    response_hash text,
    -- 1 when the rollout can be scored and count toward a target: a non-empty
    -- answer (not whitespace only), not truncated, no error. This column is
    -- the one definition of a valid rollout; triggers, views and queries read it.
    valid integer generated always as (
        error is null and truncated = 0 and coalesce(trim(response, char(32, 9, 10, 11, 12, 13)), '') != ''
    ) virtual,
    -- 1 for the first rollout of its request. A request with n > 1 pays its
    -- prompt once, yet each of its rollouts stores the request's prompt_tokens:
    -- cost (rollout_costs) charges prompt_tokens only where this is 1.
    -- Rollouts from before this column count as requests of their own.
    first_of_request integer not null default 1 check (first_of_request in (0, 1)),
    unique (prompt_id, arm, sample_index)
);
create index if not exists rollouts_run_id on rollouts(run_id);
create index if not exists rollouts_prompt_hash on rollouts(prompt_id, response_hash);

-- One row per (rollout, verifier). Several verifiers can score the same rollout;
-- re-scoring with a new verifier needs no new sampling. `passed` is NULL when the
-- verifier could not decide (an unparsable judge verdict, a timeout): such a
-- score is neither a pass nor a fail. `extracted` is the answer the verifier
-- read, and `details` says why it passed or failed.
create table if not exists scores (
    rollout_id integer not null references rollouts(id),
    verifier text not null,
    score real,
    passed integer check (passed in (0, 1)),
    extracted text,
    details text check (details is null or json_valid(details)),
    error text,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    primary key (rollout_id, verifier)
);
create index if not exists scores_verifier on scores(verifier, passed);

-- One row per sampling step of a prompt: when it was sampled, by which arm, and
-- how many came back. Step numbers count a prompt's steps over all its arms; a
-- step cut short by a crash is completed by the next run under the same step
-- number, so `max_steps` (per arm) is counted from this table.
create table if not exists steps (
    prompt_id text not null references prompts(id),
    step integer not null check (step >= 1),
    run_id integer references runs(id),
    requested integer not null default 0,
    received integer not null default 0,
    started_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at text,
    arm text not null default 'default',
    primary key (prompt_id, step)
);

-- Prices per arm (a sampling configuration; see rollouts.arm), as the latest
-- run that set them recorded them (rsr sample --price-in/--price-out/
-- --price-gpu-hour or a prices file): currency per million input (prompt)
-- and output (completion) tokens, and per GPU-hour for a self-hosted engine,
-- charged by each run's time. Costs (rollout_costs, rsr stats) are computed
-- from the engine's token counts and these prices, never estimated.
create table if not exists prices (
    arm text primary key,
    per_million_in real not null default 0 check (per_million_in >= 0),
    per_million_out real not null default 0 check (per_million_out >= 0),
    per_gpu_hour real not null default 0 check (per_gpu_hour >= 0),
    run_id integer references runs(id),
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) without rowid;

-- Per-prompt allowances of --budget proportional: how many rollouts a
-- prompt's arm may draw so far. After a first step for every prompt, each
-- round shares what is left of the total budget among the prompts that still
-- need sampling, more to those whose pass rate is low (rsr/early_stop.py);
-- the allowances never add up to more than the total.
create table if not exists allowances (
    prompt_id text not null references prompts(id),
    arm text not null,
    rollouts integer not null check (rollouts >= 0),
    primary key (prompt_id, arm)
) without rowid;

-- Labels for prompts, made by `rsr label --majority`: the answer most of a
-- prompt's valid rollouts agree on, their extracted answers grouped by the
-- verifier's own equivalence (for `math`, `1/2` and `0.5` are one vote). A
-- verifier reads a label (`rsr verify --gold label`) only where the prompt has
-- no metadata.answer: a label never replaces a gold answer. Where the prompt has
-- one, `gold` and `agrees` record whether the majority found it, which is what
-- `rsr label --check` reports: the honest measure of the method.
create table if not exists labels (
    prompt_id text primary key references prompts(id),
    label text not null,
    -- 'majority', or 'weighted-majority' (votes weighted by weight_by's scores)
    method text not null check (method in ('majority', 'weighted-majority')),
    -- the verifier whose extraction and equivalence grouped the votes
    verifier text not null,
    weight_by text,
    -- rollouts in the winning group; rollouts with an answer that voted
    votes integer not null,
    voters integer not null,
    -- the winning group's share of the (weighted) votes, 0 to 1
    share real not null check (share >= 0 and share <= 1),
    -- distinct answers (groups) among the votes
    answers integer not null,
    -- the prompt's metadata.answer when the label was made, and whether the label equals it
    gold text,
    agrees integer check (agrees in (0, 1)),
    run_id integer references runs(id),
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) without rowid;

-- One row per batch submitted to a provider's Batch API (`--sampler
-- openai-batch`): the ids a killed `rsr sample` needs to resume polling the
-- batch it submitted instead of submitting the same requests again. The same
-- requests planned again (nothing of them was written) have the same
-- `requests_hash`, and find their batch here.
create table if not exists batches (
    id integer primary key,
    run_id integer references runs(id),
    -- sha256 of the endpoint and the request file: the requests' identity
    requests_hash text not null,
    requests integer not null,
    base_url text,
    model text,
    input_file_id text,
    batch_id text,
    -- the provider's status: validating, in_progress, finalizing, completed,
    -- failed, expired, cancelling, cancelled (uploaded: not created yet)
    status text not null default 'uploaded',
    output_file_id text,
    error_file_id text,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at text
);
create index if not exists batches_requests_hash on batches(requests_hash);

-- Per-prompt counters kept by the triggers below in the same transaction as the
-- rollouts, scores and steps they count, so the early-stop question ("which
-- prompts still need samples?") is an indexed lookup even at millions of
-- rollouts. The views prompt_progress_slow and verifier_progress_slow compute the
-- same numbers from scratch; a test holds the two equal.
create table if not exists progress (
    prompt_id text primary key references prompts(id),
    -- every rollout row, whatever its fate: the budget
    rollouts integer not null default 0,
    -- rollouts with a non-empty answer that was neither truncated nor errored
    valid integer not null default 0,
    truncated integer not null default 0,
    errored integer not null default 0,
    completion_tokens integer not null default 0,
    steps integer not null default 0,
    -- rollouts asked for by all steps; rollouts < requested means a step was
    -- cut short (a crash) and the next run completes it
    requested integer not null default 0,
    -- answers that were empty or whitespace only (not truncated, no error)
    empty integer not null default 0
) without rowid;

-- Per-(prompt, verifier) verdict counts over valid rollouts only: truncated,
-- errored and empty rollouts never count toward a target.
create table if not exists verdicts (
    prompt_id text not null references prompts(id),
    verifier text not null,
    passed integer not null default 0,
    failed integer not null default 0,
    -- scored but undecided (passed is NULL)
    unparsed integer not null default 0,
    -- passes with distinct responses (identical completions count once)
    distinct_passed integer not null default 0,
    primary key (prompt_id, verifier)
) without rowid;

-- The same budget counters per (prompt, arm): what an arm's budget and, unless
-- a run pools its arms, its target count. last_step is the number of the
-- arm's latest step (a step cut short is completed under it).
create table if not exists arm_progress (
    prompt_id text not null references prompts(id),
    arm text not null,
    rollouts integer not null default 0,
    valid integer not null default 0,
    steps integer not null default 0,
    requested integer not null default 0,
    last_step integer not null default 0,
    primary key (prompt_id, arm)
) without rowid;

-- Verdict counts per (prompt, arm, verifier), over valid rollouts only.
create table if not exists arm_verdicts (
    prompt_id text not null references prompts(id),
    arm text not null,
    verifier text not null,
    passed integer not null default 0,
    failed integer not null default 0,
    unparsed integer not null default 0,
    distinct_passed integer not null default 0,
    primary key (prompt_id, arm, verifier)
) without rowid;

create trigger if not exists rollouts_count_insert after insert on rollouts
begin
    insert into progress (prompt_id) values (new.prompt_id)
        on conflict (prompt_id) do nothing;
    update progress set
        rollouts = rollouts + 1,
        valid = valid + new.valid,
        truncated = truncated + (new.truncated = 1),
        errored = errored + (new.error is not null),
        empty = empty + (new.error is null and new.truncated = 0 and not new.valid),
        completion_tokens = completion_tokens + coalesce(new.completion_tokens, 0)
    where prompt_id = new.prompt_id;
end;

create trigger if not exists rollouts_count_delete after delete on rollouts
begin
    update progress set
        rollouts = rollouts - 1,
        valid = valid - old.valid,
        truncated = truncated - (old.truncated = 1),
        errored = errored - (old.error is not null),
        empty = empty - (old.error is null and old.truncated = 0 and not old.valid),
        completion_tokens = completion_tokens - coalesce(old.completion_tokens, 0)
    where prompt_id = old.prompt_id;
end;

-- A pass adds to distinct_passed only when no other passing rollout of the
-- prompt (same verifier) has the same response_hash.
create trigger if not exists scores_count_insert after insert on scores
when (select valid from rollouts where id = new.rollout_id)
begin
    insert into verdicts (prompt_id, verifier)
        values ((select prompt_id from rollouts where id = new.rollout_id), new.verifier)
        on conflict (prompt_id, verifier) do nothing;
    update verdicts set
        passed = passed + (new.passed is 1),
        failed = failed + (new.passed is 0),
        unparsed = unparsed + (new.passed is null),
        distinct_passed = distinct_passed + (new.passed is 1 and not exists (
            select 1 from rollouts r join scores s on s.rollout_id = r.id
            where (r.prompt_id, r.response_hash) = (select prompt_id, response_hash
                                                    from rollouts where id = new.rollout_id)
              and r.id != new.rollout_id and s.verifier = new.verifier and s.passed = 1
              and r.valid))
    where prompt_id = (select prompt_id from rollouts where id = new.rollout_id)
      and verifier = new.verifier;
end;

create trigger if not exists scores_count_delete after delete on scores
when (select valid from rollouts where id = old.rollout_id)
begin
    update verdicts set
        passed = passed - (old.passed is 1),
        failed = failed - (old.passed is 0),
        unparsed = unparsed - (old.passed is null),
        distinct_passed = distinct_passed - (old.passed is 1 and not exists (
            select 1 from rollouts r join scores s on s.rollout_id = r.id
            where (r.prompt_id, r.response_hash) = (select prompt_id, response_hash
                                                    from rollouts where id = old.rollout_id)
              and r.id != old.rollout_id and s.verifier = old.verifier and s.passed = 1
              and r.valid))
    where prompt_id = (select prompt_id from rollouts where id = old.rollout_id)
      and verifier = old.verifier;
end;

create trigger if not exists scores_count_update after update of passed on scores
when (select valid from rollouts where id = new.rollout_id)
begin
    update verdicts set
        passed = passed - (old.passed is 1) + (new.passed is 1),
        failed = failed - (old.passed is 0) + (new.passed is 0),
        unparsed = unparsed - (old.passed is null) + (new.passed is null),
        distinct_passed = distinct_passed
            + ((new.passed is 1) - (old.passed is 1)) * not exists (
            select 1 from rollouts r join scores s on s.rollout_id = r.id
            where (r.prompt_id, r.response_hash) = (select prompt_id, response_hash
                                                    from rollouts where id = new.rollout_id)
              and r.id != new.rollout_id and s.verifier = new.verifier and s.passed = 1
              and r.valid)
    where prompt_id = (select prompt_id from rollouts where id = new.rollout_id)
      and verifier = new.verifier;
end;

create trigger if not exists steps_count_insert after insert on steps
begin
    insert into progress (prompt_id) values (new.prompt_id)
        on conflict (prompt_id) do nothing;
    update progress set steps = steps + 1, requested = requested + new.requested
    where prompt_id = new.prompt_id;
end;

create trigger if not exists steps_count_update after update of requested on steps
begin
    update progress set requested = requested - old.requested + new.requested
    where prompt_id = new.prompt_id;
end;

create trigger if not exists steps_count_delete after delete on steps
begin
    update progress set steps = steps - 1, requested = requested - old.requested
    where prompt_id = old.prompt_id;
end;

-- The per-arm counters, kept the same way.
create trigger if not exists rollouts_arm_count_insert after insert on rollouts
begin
    insert into arm_progress (prompt_id, arm) values (new.prompt_id, new.arm)
        on conflict (prompt_id, arm) do nothing;
    update arm_progress set rollouts = rollouts + 1, valid = valid + new.valid
    where prompt_id = new.prompt_id and arm = new.arm;
end;

create trigger if not exists rollouts_arm_count_delete after delete on rollouts
begin
    update arm_progress set rollouts = rollouts - 1, valid = valid - old.valid
    where prompt_id = old.prompt_id and arm = old.arm;
end;

create trigger if not exists scores_arm_count_insert after insert on scores
when (select valid from rollouts where id = new.rollout_id)
begin
    insert into arm_verdicts (prompt_id, arm, verifier)
        select prompt_id, arm, new.verifier from rollouts where id = new.rollout_id
        on conflict (prompt_id, arm, verifier) do nothing;
    update arm_verdicts set
        passed = passed + (new.passed is 1),
        failed = failed + (new.passed is 0),
        unparsed = unparsed + (new.passed is null),
        distinct_passed = distinct_passed + (new.passed is 1 and not exists (
            select 1 from rollouts r join scores s on s.rollout_id = r.id
            where (r.prompt_id, r.arm, r.response_hash) = (
                      select prompt_id, arm, response_hash from rollouts where id = new.rollout_id)
              and r.id != new.rollout_id and s.verifier = new.verifier and s.passed = 1
              and r.valid))
    where (prompt_id, arm) = (select prompt_id, arm from rollouts where id = new.rollout_id)
      and verifier = new.verifier;
end;

create trigger if not exists scores_arm_count_delete after delete on scores
when (select valid from rollouts where id = old.rollout_id)
begin
    update arm_verdicts set
        passed = passed - (old.passed is 1),
        failed = failed - (old.passed is 0),
        unparsed = unparsed - (old.passed is null),
        distinct_passed = distinct_passed - (old.passed is 1 and not exists (
            select 1 from rollouts r join scores s on s.rollout_id = r.id
            where (r.prompt_id, r.arm, r.response_hash) = (
                      select prompt_id, arm, response_hash from rollouts where id = old.rollout_id)
              and r.id != old.rollout_id and s.verifier = old.verifier and s.passed = 1
              and r.valid))
    where (prompt_id, arm) = (select prompt_id, arm from rollouts where id = old.rollout_id)
      and verifier = old.verifier;
end;

create trigger if not exists scores_arm_count_update after update of passed on scores
when (select valid from rollouts where id = new.rollout_id)
begin
    update arm_verdicts set
        passed = passed - (old.passed is 1) + (new.passed is 1),
        failed = failed - (old.passed is 0) + (new.passed is 0),
        unparsed = unparsed - (old.passed is null) + (new.passed is null),
        distinct_passed = distinct_passed
            + ((new.passed is 1) - (old.passed is 1)) * not exists (
            select 1 from rollouts r join scores s on s.rollout_id = r.id
            where (r.prompt_id, r.arm, r.response_hash) = (
                      select prompt_id, arm, response_hash from rollouts where id = new.rollout_id)
              and r.id != new.rollout_id and s.verifier = new.verifier and s.passed = 1
              and r.valid)
    where (prompt_id, arm) = (select prompt_id, arm from rollouts where id = new.rollout_id)
      and verifier = new.verifier;
end;

create trigger if not exists steps_arm_count_insert after insert on steps
begin
    insert into arm_progress (prompt_id, arm) values (new.prompt_id, new.arm)
        on conflict (prompt_id, arm) do nothing;
    update arm_progress set steps = steps + 1, requested = requested + new.requested,
        last_step = max(last_step, new.step)
    where prompt_id = new.prompt_id and arm = new.arm;
end;

create trigger if not exists steps_arm_count_update after update of requested on steps
begin
    update arm_progress set requested = requested - old.requested + new.requested
    where prompt_id = new.prompt_id and arm = new.arm;
end;

create trigger if not exists steps_arm_count_delete after delete on steps
begin
    update arm_progress set steps = steps - 1, requested = requested - old.requested,
        last_step = coalesce((select max(step) from steps
                              where prompt_id = old.prompt_id and arm = old.arm), 0)
    where prompt_id = old.prompt_id and arm = old.arm;
end;

-- Per-prompt progress, for people: one row per prompt with its counters (zeros
-- for a prompt never sampled). Early stop reads the same counters.
create view if not exists prompt_progress as
select
    prompts.id as prompt_id,
    coalesce(progress.rollouts, 0) as rollouts,
    coalesce(progress.valid, 0) as valid,
    coalesce(progress.truncated, 0) as truncated,
    coalesce(progress.errored, 0) as errored,
    coalesce(progress.steps, 0) as steps,
    coalesce(progress.requested, 0) as requested,
    coalesce(progress.completion_tokens, 0) as completion_tokens,
    coalesce(progress.empty, 0) as empty
from prompts
left join progress on progress.prompt_id = prompts.id;

-- The definition the progress counters must agree with, computed from scratch.
create view if not exists prompt_progress_slow as
select
    prompts.id as prompt_id,
    count(rollouts.id) as rollouts,
    coalesce(sum(rollouts.valid), 0) as valid,
    coalesce(sum(rollouts.truncated = 1), 0) as truncated,
    coalesce(sum(rollouts.error is not null), 0) as errored,
    (select count(*) from steps where steps.prompt_id = prompts.id) as steps,
    (select coalesce(sum(requested), 0) from steps where steps.prompt_id = prompts.id) as requested,
    coalesce(sum(rollouts.completion_tokens), 0) as completion_tokens,
    coalesce(sum(rollouts.error is null and rollouts.truncated = 0 and not rollouts.valid), 0) as empty
from prompts
left join rollouts on rollouts.prompt_id = prompts.id
group by prompts.id;

-- The definition the verdict counters must agree with, computed from scratch.
create view if not exists verifier_progress_slow as
select
    rollouts.prompt_id as prompt_id,
    scores.verifier as verifier,
    sum(scores.passed is 1) as passed,
    sum(scores.passed is 0) as failed,
    sum(scores.passed is null) as unparsed,
    count(distinct case when scores.passed is 1
          then coalesce(rollouts.response_hash, 'rollout ' || rollouts.id) end) as distinct_passed
from scores
join rollouts on rollouts.id = scores.rollout_id
where rollouts.valid
group by rollouts.prompt_id, scores.verifier;

-- The definitions the per-arm counters must agree with, computed from scratch.
create view if not exists arm_progress_slow as
select
    keys.prompt_id, keys.arm,
    (select count(*) from rollouts r where r.prompt_id = keys.prompt_id and r.arm = keys.arm)
        as rollouts,
    (select coalesce(sum(r.valid), 0) from rollouts r
     where r.prompt_id = keys.prompt_id and r.arm = keys.arm) as valid,
    (select count(*) from steps s where s.prompt_id = keys.prompt_id and s.arm = keys.arm)
        as steps,
    (select coalesce(sum(s.requested), 0) from steps s
     where s.prompt_id = keys.prompt_id and s.arm = keys.arm) as requested,
    (select coalesce(max(s.step), 0) from steps s
     where s.prompt_id = keys.prompt_id and s.arm = keys.arm) as last_step
from (select prompt_id, arm from rollouts union select prompt_id, arm from steps) keys;

create view if not exists arm_verdicts_slow as
select
    rollouts.prompt_id as prompt_id,
    rollouts.arm as arm,
    scores.verifier as verifier,
    sum(scores.passed is 1) as passed,
    sum(scores.passed is 0) as failed,
    sum(scores.passed is null) as unparsed,
    count(distinct case when scores.passed is 1
          then coalesce(rollouts.response_hash, 'rollout ' || rollouts.id) end) as distinct_passed
from scores
join rollouts on rollouts.id = scores.rollout_id
where rollouts.valid
group by rollouts.prompt_id, rollouts.arm, scores.verifier;

-- Pass rate per prompt and verifier: the numbers behind curricula (easy / hard).
create view if not exists prompt_pass_rates as
select
    verdicts.prompt_id,
    verdicts.verifier,
    verdicts.passed,
    verdicts.failed,
    verdicts.unparsed,
    case when verdicts.passed + verdicts.failed > 0
        then round(1.0 * verdicts.passed / (verdicts.passed + verdicts.failed), 4)
    end as pass_rate
from verdicts;

-- Rollouts beside their prompt and every score, for reading in Datasette.
create view if not exists rollouts_scored as
select
    rollouts.id as rollout_id,
    rollouts.prompt_id,
    rollouts.sample_index,
    rollouts.step,
    rollouts.response,
    rollouts.finish_reason,
    rollouts.truncated,
    rollouts.error,
    rollouts.completion_tokens,
    scores.verifier,
    scores.score,
    scores.passed,
    scores.extracted
from rollouts
left join scores on scores.rollout_id = rollouts.id;

-- One row per rollout with its verdicts in one column ("math: pass, judge:
-- fail"), or why it has none (error, truncated, empty, unscored): the list of
-- rollouts to scan and facet in `rsr browse`.
create view if not exists rollout_verdicts as
select
    rollouts.id as rollout_id,
    rollouts.prompt_id,
    rollouts.sample_index,
    case
        when rollouts.error is not null then 'error'
        when rollouts.truncated = 1 then 'truncated'
        when not rollouts.valid then 'empty'
        else coalesce((
            select group_concat(verdict, ', ') from (
                select scores.verifier || ': ' || case scores.passed
                    when 1 then 'pass' when 0 then 'fail' else 'undecided' end as verdict
                from scores where scores.rollout_id = rollouts.id
                order by scores.verifier)), 'unscored')
    end as verdict,
    rollouts.finish_reason,
    rollouts.completion_tokens,
    rollouts.response,
    rollouts.run_id,
    rollouts.model
from rollouts;

-- One row per prompt and verifier (one row with no verifier before any score):
-- the question, the gold answer, its rollouts and its pass rate.
create view if not exists prompt_overview as
select
    prompts.id as prompt_id,
    (select json_extract(turn.value, '$.content') from json_each(prompts.messages) as turn
     where json_extract(turn.value, '$.role') = 'user'
     order by turn.key desc limit 1) as question,
    json_extract(prompts.metadata, '$.answer') as answer,
    verdicts.verifier,
    coalesce(progress.rollouts, 0) as rollouts,
    coalesce(progress.valid, 0) as valid,
    coalesce(verdicts.passed, 0) as passed,
    coalesce(verdicts.failed, 0) as failed,
    coalesce(verdicts.unparsed, 0) as undecided,
    case when verdicts.passed + verdicts.failed > 0
        then round(1.0 * verdicts.passed / (verdicts.passed + verdicts.failed), 4)
    end as pass_rate,
    coalesce(progress.truncated, 0) as truncated,
    coalesce(progress.errored, 0) as errored,
    prompts.metadata
from prompts
left join progress on progress.prompt_id = prompts.id
left join verdicts on verdicts.prompt_id = prompts.id;

-- What each run's engine time cost: its hours (to its end, or to now while it
-- runs; a run a crash cut short ends at its last rollout) times its arm's price per GPU-hour, for runs that wrote rollouts.
create view if not exists run_costs as
select
    r.run_id,
    r.arm,
    r.hours,
    r.rollouts,
    r.hours * coalesce(prices.per_gpu_hour, 0) as gpu_cost
from (
    select
        runs.id as run_id,
        -- a sampling run draws one arm
        (select min(arm) from rollouts where rollouts.run_id = runs.id) as arm,
        (julianday(case when runs.status = 'running' then strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
                        else coalesce(runs.finished_at, (select max(created_at) from rollouts
                                                         where rollouts.run_id = runs.id)) end)
         - julianday(runs.started_at)) * 24 as hours,
        (select count(*) from rollouts where rollouts.run_id = runs.id) as rollouts
    from runs
    where exists (select 1 from rollouts where rollouts.run_id = runs.id)
) r
left join prices on prices.arm = r.arm;

-- What each rollout cost in tokens: prompt tokens once per request
-- (first_of_request), completion tokens always, at its arm's prices.
create view if not exists rollout_token_costs as
select
    rollouts.id as rollout_id,
    rollouts.prompt_id,
    rollouts.arm,
    rollouts.run_id,
    case when rollouts.first_of_request then coalesce(rollouts.prompt_tokens, 0) else 0 end
        as charged_prompt_tokens,
    coalesce(rollouts.completion_tokens, 0) as completion_tokens,
    (case when rollouts.first_of_request then coalesce(rollouts.prompt_tokens, 0) else 0 end
     * coalesce(prices.per_million_in, 0)
     + coalesce(rollouts.completion_tokens, 0) * coalesce(prices.per_million_out, 0)) / 1e6
        as token_cost
from rollouts
left join prices on prices.arm = rollouts.arm;

-- Each rollout's whole cost: its tokens, plus an even share of its run's
-- GPU-hour cost. Totals, per prompt, per passing rollout and per exported
-- row (rsr stats) are sums over this view.
create view if not exists rollout_costs as
select
    t.rollout_id, t.prompt_id, t.arm, t.run_id, t.charged_prompt_tokens, t.completion_tokens,
    t.token_cost,
    coalesce(rc.gpu_cost / rc.rollouts, 0) as gpu_cost,
    t.token_cost + coalesce(rc.gpu_cost / rc.rollouts, 0) as cost
from rollout_token_costs t
left join run_costs rc on rc.run_id = t.run_id;
