#include "daemon/solver/solver.h"

#include <map>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "base/digest.h"
#include "base/status.h"

namespace kiln::solver {
namespace {

absl::Status AtVertex(const absl::Status& st, const Vertex& v) {
  if (st.ok() || st.GetPayload(kVertexPayload).has_value()) return st;
  // Dockerfile steps are named "[stage 2/5] RUN ..." already.
  const std::string& name = v.name.empty() ? v.digest : v.name;
  absl::Status out = Annotate(st, name.starts_with('[') ? name : absl::StrCat("[", name, "]"));
  out.SetPayload(kVertexPayload, absl::Cord(v.digest));
  return out;
}

class NullProgress final : public ProgressSink {
  void Started(const Vertex&) override {}
  void Completed(const Vertex&, bool, const absl::Status&) override {}
};

}  // namespace

// One solve: memoized per-vertex futures for keys and outputs. Lives until every callback it
// scheduled has run (callbacks hold a shared_ptr to it).
class Solver::Job : public std::enable_shared_from_this<Job> {
 public:
  Job(Solver& solver, Context ctx, ProgressSink* progress, SolveOptions options)
      : solver_(solver),
        ctx_(std::move(ctx)),
        progress_(progress ? progress : &null_),
        options_(options) {}

  Future<std::string> KeyOf(const std::shared_ptr<Vertex>& v) {
    Future<std::string> key;
    {
      std::lock_guard lock(mu_);
      State& s = states_[v.get()];
      if (s.key) return *s.key;
      s.key = key;
      s.vertex = v;
    }
    std::vector<Future<std::string>> input_keys;
    for (const Edge& in : v->inputs) input_keys.push_back(KeyOf(in.vertex));
    auto self = shared_from_this();
    WhenAll(input_keys).Then([self, v, key](const absl::StatusOr<std::vector<std::string>>& keys) {
      if (!keys.ok()) return key.Resolve(keys.status());
      self->Post([self, v, key, keys = *keys] { self->ComputeKey(v, keys, key); });
    });
    return key;
  }

  Future<ResultPtr> ResultOf(const Edge& e) {
    Future<ResultPtr> out;
    int index = e.index;
    std::string name = e.vertex->name;
    OutputsOf(e.vertex).Then([out, index, name](const absl::StatusOr<std::vector<ResultPtr>>& r) {
      if (!r.ok()) return out.Resolve(r.status());
      if (index < 0 || static_cast<size_t>(index) >= r->size()) {
        return out.Resolve(absl::InternalError(
            absl::StrCat("vertex ", name, " has no output ", index, " (it has ", r->size(), ")")));
      }
      out.Resolve((*r)[index]);
    });
    return out;
  }

  // Reports vertices that were keyed but whose results were never needed (their descendants
  // were cached) as cached, as BuildKit's progress does.
  void ReportSkipped() {
    std::vector<std::shared_ptr<Vertex>> skipped;
    {
      std::lock_guard lock(mu_);
      for (auto& [ptr, s] : states_) {
        if (!s.outputs && s.key && s.key->ready() && s.key->Wait().ok())
          skipped.push_back(s.vertex);
      }
    }
    for (const auto& v : skipped) progress_->Completed(*v, true, absl::OkStatus());
  }

 private:
  struct State {
    std::shared_ptr<Vertex> vertex;
    std::optional<Future<std::string>> key;
    std::optional<Future<std::vector<ResultPtr>>> outputs;
  };

  void Post(std::function<void()> fn) { solver_.options_.post(std::move(fn)); }

  void RecordKey(const std::shared_ptr<Vertex>& v, const std::string& key,
                 const std::string& op_digest, const std::vector<KeyInput>& inputs) {
    if (!options_.recorder) return;
    options_.recorder->RecordKey(
        {.key = key, .op_digest = op_digest, .inputs = inputs, .name = v->name});
  }

  // The alias of a fast key: the daemon's own, else the fallback's (an imported cache).
  std::optional<CacheStore::Alias> LoadAlias(const std::string& fast) {
    auto alias = solver_.options_.cache->LoadAlias(ctx_, fast);
    if (alias.ok() && *alias) return *std::move(alias);
    if (!options_.fallback) return std::nullopt;
    alias = options_.fallback->LoadAlias(ctx_, fast);
    if (alias.ok() && *alias) {
      (void)solver_.options_.cache->SaveAlias(fast, **alias);
      return *std::move(alias);
    }
    return std::nullopt;
  }

  void Record(const std::string& key, const std::vector<ResultPtr>& results) {
    if (options_.recorder) options_.recorder->RecordResults(key, results);
  }

  void ComputeKey(const std::shared_ptr<Vertex>& v, const std::vector<std::string>& input_keys,
                  const Future<std::string>& key) {
    if (absl::Status st = ctx_.Check("solve"); !st.ok()) return key.Resolve(st);
    v->op->AttachProgress(progress_, v.get());
    absl::StatusOr<CacheMap> cm = v->op->GetCacheMap(ctx_);
    if (!cm.ok()) {
      absl::Status st = AtVertex(cm.status(), *v);
      progress_->Completed(*v, false, st);
      return key.Resolve(st);
    }
    // Inputs that contribute their content need their results first, unless an alias of the
    // fast key (from the inputs' keys) says what their contents were.
    std::vector<Future<ResultPtr>> contents;
    std::vector<size_t> content_inputs;
    for (size_t i = 0; i < cm->deps.size() && i < v->inputs.size(); ++i) {
      if (cm->deps[i].content_digest) content_inputs.push_back(i);
    }
    std::string fast;
    if (!content_inputs.empty()) {
      std::vector<KeyInput> by_key(v->inputs.size());
      for (size_t i = 0; i < v->inputs.size(); ++i) {
        by_key[i] = {.key = input_keys[i], .index = v->inputs[i].index};
      }
      fast = ComposeCacheKey(cm->digest, by_key);
      if (std::optional<CacheStore::Alias> alias = LoadAlias(fast);
          alias && alias->contents.size() == v->inputs.size()) {
        for (size_t i = 0; i < v->inputs.size(); ++i) by_key[i].content = alias->contents[i];
        if (ComposeCacheKey(cm->digest, by_key) == alias->key) {
          RecordKey(v, alias->key, cm->digest, by_key);
          return key.Resolve(alias->key);
        }
      }
      for (size_t i : content_inputs) contents.push_back(ResultOf(v->inputs[i]));
    }
    auto self = shared_from_this();
    WhenAll(contents).Then([self, v, key, input_keys, cm = *cm, content_inputs,
                            fast](const absl::StatusOr<std::vector<ResultPtr>>& results) {
      if (!results.ok()) return key.Resolve(results.status());
      self->Post([self, v, key, input_keys, cm, content_inputs, fast, results = *results] {
        std::vector<KeyInput> inputs(v->inputs.size());
        for (size_t j = 0; j < content_inputs.size(); ++j) {
          size_t i = content_inputs[j];
          auto d = cm.deps[i].content_digest(self->ctx_, results[j]);
          if (!d.ok()) {
            absl::Status st = AtVertex(d.status(), *v);
            self->progress_->Completed(*v, false, st);
            return key.Resolve(st);
          }
          inputs[i].content = *d;
        }
        for (size_t i = 0; i < v->inputs.size(); ++i) {
          inputs[i].key = input_keys[i];
          inputs[i].index = v->inputs[i].index;
        }
        std::string k = ComposeCacheKey(cm.digest, inputs);
        if (!fast.empty()) {
          CacheStore::Alias alias{.key = k};
          for (const KeyInput& in : inputs) alias.contents.push_back(in.content);
          // Best effort: without the alias the next solve computes the contents again.
          (void)self->solver_.options_.cache->SaveAlias(fast, alias);
        }
        self->RecordKey(v, k, cm.digest, inputs);
        key.Resolve(std::move(k));
      });
    });
  }

  Future<std::vector<ResultPtr>> OutputsOf(const std::shared_ptr<Vertex>& v) {
    Future<std::vector<ResultPtr>> outputs;
    {
      std::lock_guard lock(mu_);
      State& s = states_[v.get()];
      if (s.outputs) return *s.outputs;
      s.outputs = outputs;
      s.vertex = v;
    }
    auto self = shared_from_this();
    KeyOf(v).Then([self, v, outputs](const absl::StatusOr<std::string>& key) {
      if (!key.ok()) return outputs.Resolve(key.status());
      self->Post([self, v, outputs, key = *key] { self->LoadOrRun(v, key, outputs); });
    });
    return outputs;
  }

  void LoadOrRun(const std::shared_ptr<Vertex>& v, const std::string& key,
                 const Future<std::vector<ResultPtr>>& outputs) {
    if (absl::Status st = ctx_.Check("solve"); !st.ok()) return outputs.Resolve(st);
    if (!v->ignore_cache) {
      auto cached = solver_.options_.cache->Load(ctx_, key);
      if (cached.ok() && cached->empty() && options_.fallback) {
        cached = options_.fallback->Load(ctx_, key);
      }
      if (!cached.ok()) return outputs.Resolve(AtVertex(cached.status(), *v));
      if (!cached->empty()) {
        Record(key, *cached);
        progress_->Completed(*v, true, absl::OkStatus());
        return outputs.Resolve(*std::move(cached));
      }
    }
    std::vector<Future<ResultPtr>> inputs;
    for (const Edge& in : v->inputs) inputs.push_back(ResultOf(in));
    auto self = shared_from_this();
    WhenAll(inputs).Then([self, v, key, outputs](const absl::StatusOr<std::vector<ResultPtr>>& in) {
      if (!in.ok()) return outputs.Resolve(in.status());
      bool started = false;
      Future<std::vector<ResultPtr>> run = self->solver_.flights_.Do(
          self->ctx_, key,
          [self, v, key, in = *in](const Context& flight_ctx) {
            Future<std::vector<ResultPtr>> done;
            self->Post([self, v, key, in, flight_ctx, done] {
              if (absl::Status st = flight_ctx.Check("solve"); !st.ok()) return done.Resolve(st);
              // Another job may have finished this key between our cache miss and the flight.
              if (!v->ignore_cache) {
                auto cached = self->solver_.options_.cache->Load(flight_ctx, key);
                if (cached.ok() && !cached->empty()) return done.Resolve(*std::move(cached));
              }
              if (self->solver_.options_.on_exec) self->solver_.options_.on_exec(*v, key);
              absl::StatusOr<std::vector<ResultPtr>> r = v->op->Exec(flight_ctx, in);
              if (r.ok()) {
                if (absl::Status st = self->solver_.options_.cache->Save(key, *r); !st.ok()) {
                  r = st;
                }
              }
              done.Resolve(
                  r.ok() ? r : absl::StatusOr<std::vector<ResultPtr>>(AtVertex(r.status(), *v)));
            });
            return done;
          },
          &started);
      self->progress_->Started(*v);
      run.Then([self, v, key, outputs](const absl::StatusOr<std::vector<ResultPtr>>& r) {
        if (r.ok()) self->Record(key, *r);
        self->progress_->Completed(*v, false, r.status());
        outputs.Resolve(r);
      });
    });
  }

  Solver& solver_;
  const Context ctx_;
  ProgressSink* const progress_;
  const SolveOptions options_;
  NullProgress null_;
  std::mutex mu_;
  std::map<const Vertex*, State> states_;  // guarded by mu_
};

absl::StatusOr<ResultPtr> Solver::Solve(const Context& ctx, const Edge& target,
                                        ProgressSink* progress, const SolveOptions& options) {
  if (!target.vertex) return absl::InvalidArgumentError("nothing to solve: empty target");
  auto job = std::make_shared<Job>(*this, ctx, progress, options);
  absl::StatusOr<ResultPtr> r = job->ResultOf(target).Wait();
  if (r.ok()) job->ReportSkipped();
  return r;
}

absl::StatusOr<std::string> Solver::CacheKey(const Context& ctx, const Edge& target) {
  auto job = std::make_shared<Job>(*this, ctx, nullptr, SolveOptions{});
  return job->KeyOf(target.vertex).Wait();
}

std::string ComposeCacheKey(const std::string& op_digest, const std::vector<KeyInput>& inputs) {
  std::string text = absl::StrCat("kiln.cachekey.v1\nop ", op_digest, "\n");
  // An input read by content contributes only its content: a changed context whose selected
  // files are unchanged keeps the dependent vertex cached.
  for (const KeyInput& in : inputs) {
    if (!in.content.empty()) {
      absl::StrAppend(&text, "input content ", in.content, "\n");
    } else {
      absl::StrAppend(&text, "input ", in.key, " ", in.index, "\n");
    }
  }
  return Sha256Digest(text);
}

void KeyRecorder::RecordKey(Record record) {
  std::lock_guard lock(mu_);
  auto [it, inserted] = records_.try_emplace(record.key, std::move(record));
  (void)it;
  (void)inserted;  // the same key from another vertex or solve: the same parts
}

void KeyRecorder::RecordResults(const std::string& key, const std::vector<ResultPtr>& results) {
  std::lock_guard lock(mu_);
  auto it = records_.find(key);
  if (it != records_.end()) it->second.results = results;
}

std::map<std::string, KeyRecorder::Record> KeyRecorder::Records() const {
  std::lock_guard lock(mu_);
  return records_;
}

std::optional<std::pair<std::string, int>> KeyRecorder::KeyOfResult(const ResultPtr& result) const {
  std::lock_guard lock(mu_);
  for (const auto& [key, r] : records_) {
    for (size_t i = 0; i < r.results.size(); ++i) {
      if (r.results[i] == result) return std::make_pair(key, static_cast<int>(i));
    }
  }
  return std::nullopt;
}

}  // namespace kiln::solver
