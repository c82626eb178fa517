#include "model/model.h"

#include <spdlog/spdlog.h>
#include <xxhash.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "util/error.h"
#include "util/progress.h"
#include "util/sha256.h"

namespace hwledger {

namespace fs = std::filesystem;

uint64_t LayerWeights::bytes() const {
  uint64_t n = 0;
  for (const Tensor* t : {&attn_norm, &wq, &wk, &wv, &wo, &bq, &bk, &bv, &bo, &q_norm, &k_norm,
                          &mlp_norm, &w_gate, &w_up, &w_down, &b_gate, &b_up, &b_down})
    if (!t->empty()) n += t->nbytes();
  return n;
}

uint64_t Model::embedding_bytes() const {
  uint64_t n = embed.nbytes();
  if (lm_head.data != embed.data) n += lm_head.nbytes();
  return n;
}

uint64_t Model::weights_bytes() const {
  uint64_t n = embedding_bytes() + final_norm.nbytes();
  for (const auto& l : layers) n += l.bytes();
  return n;
}

class ModelLoader {
 public:
  ModelLoader(Model& m, const LoadOptions& opts) : m_(m), opts_(opts) {}

  void load(const std::string& dir) {
    m_.dir = dir;
    if (!fs::is_directory(dir)) fail_input("model folder '{}' does not exist", dir);
    std::string config_path = (fs::path(dir) / "config.json").string();
    if (!fs::exists(config_path)) fail_input("model folder '{}' has no config.json", dir);
    m_.config = ModelConfig::from_file(config_path);
    open_files(dir);
    const ModelConfig& c = m_.config;
    const int64_t H = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
    const int64_t Q = c.q_dim(), KV = c.kv_dim(), hd = c.head_dim;

    m_.embed = matrix("model.embed_tokens.weight", {V, H});
    m_.final_norm = vector_f32("model.norm.weight", H);
    if (find("lm_head.weight")) {
      m_.lm_head = matrix("lm_head.weight", {V, H});
    } else {
      // As transformers does, a checkpoint without lm_head.weight ties the head to the embedding.
      if (!c.tie_word_embeddings)
        spdlog::warn("{}: no lm_head.weight although tie_word_embeddings is false; using the embedding", dir);
      m_.lm_head = m_.embed;
    }
    m_.layers.resize(c.num_layers);
    for (int64_t i = 0; i < c.num_layers; ++i) {
      std::string p = "model.layers." + std::to_string(i) + ".";
      LayerWeights& l = m_.layers[i];
      l.attn_norm = vector_f32(p + "input_layernorm.weight", H);
      l.wq = matrix(p + "self_attn.q_proj.weight", {Q, H});
      l.wk = matrix(p + "self_attn.k_proj.weight", {KV, H});
      l.wv = matrix(p + "self_attn.v_proj.weight", {KV, H});
      l.wo = matrix(p + "self_attn.o_proj.weight", {H, Q});
      if (c.qkv_bias) {
        l.bq = vector_f32(p + "self_attn.q_proj.bias", Q);
        l.bk = vector_f32(p + "self_attn.k_proj.bias", KV);
        l.bv = vector_f32(p + "self_attn.v_proj.bias", KV);
      }
      if (c.o_bias) l.bo = vector_f32(p + "self_attn.o_proj.bias", H);
      if (c.qk_norm) {
        l.q_norm = vector_f32(p + "self_attn.q_norm.weight", hd);
        l.k_norm = vector_f32(p + "self_attn.k_norm.weight", hd);
      }
      l.mlp_norm = vector_f32(p + "post_attention_layernorm.weight", H);
      l.w_gate = matrix(p + "mlp.gate_proj.weight", {F, H});
      l.w_up = matrix(p + "mlp.up_proj.weight", {F, H});
      l.w_down = matrix(p + "mlp.down_proj.weight", {H, F});
      if (c.mlp_bias) {
        l.b_gate = vector_f32(p + "mlp.gate_proj.bias", F);
        l.b_up = vector_f32(p + "mlp.up_proj.bias", F);
        l.b_down = vector_f32(p + "mlp.down_proj.bias", H);
      }
    }
    read_and_fingerprint();
  }

 private:
  void open_files(const std::string& dir) {
    fs::path index = fs::path(dir) / "model.safetensors.index.json";
    std::vector<std::string> names;
    if (fs::exists(index)) {
      std::ifstream in(index);
      std::stringstream ss;
      ss << in.rdbuf();
      auto j = nlohmann::json::parse(ss.str(), nullptr, false);
      if (j.is_discarded() || !j.contains("weight_map") || !j["weight_map"].is_object())
        fail_input("'{}' is not a valid safetensors index (needs a weight_map object)", index.string());
      std::set<std::string> unique;
      for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
        if (!it.value().is_string()) fail_input("'{}': weight_map['{}'] is not a file name", index.string(), it.key());
        std::string f = it.value().get<std::string>();
        if (f.find('/') != std::string::npos || f.find("..") != std::string::npos)
          fail_input("'{}': weight_map['{}'] names a path outside the model folder: '{}'", index.string(), it.key(), f);
        unique.insert(f);
      }
      names.assign(unique.begin(), unique.end());
    } else if (fs::exists(fs::path(dir) / "model.safetensors")) {
      names.push_back("model.safetensors");
    } else {
      fail_input("model folder '{}' has neither model.safetensors nor model.safetensors.index.json", dir);
    }
    for (const auto& n : names) {
      auto f = std::make_unique<SafetensorsFile>((fs::path(dir) / n).string());
      for (const auto& [tname, e] : f->header().tensors) where_[tname] = f.get();
      m_.files_.push_back(std::move(f));
    }
  }

  const SafetensorsFile* find(const std::string& name) const {
    auto it = where_.find(name);
    return it == where_.end() ? nullptr : it->second;
  }

  Tensor get(const std::string& name, std::initializer_list<int64_t> shape) {
    const SafetensorsFile* f = find(name);
    if (!f) fail_input("model '{}' is missing tensor '{}'", m_.dir, name);
    Tensor t = f->tensor(name);
    bool ok = t.ndim == static_cast<int>(shape.size());
    int i = 0;
    for (int64_t d : shape) ok = ok && t.shape[i++] == d;
    if (!ok) {
      Tensor want(nullptr, t.dtype, shape);
      fail_input("tensor '{}' has shape {} but config.json implies {}", name, t.shape_str(), want.shape_str());
    }
    if (t.dtype == DType::I32) fail_input("tensor '{}' has integer dtype; weights must be BF16, F16 or F32", name);
    used_.push_back(t);
    return t;
  }

  Tensor matrix(const std::string& name, std::initializer_list<int64_t> shape) { return get(name, shape); }

  Tensor vector_f32(const std::string& name, int64_t n) {
    Tensor src = get(name, {n});
    Buffer buf(n * sizeof(float));
    float* dst = static_cast<float*>(buf.data());
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* p = static_cast<const uint8_t*>(src.data);
      uint16_t h;
      switch (src.dtype) {
        case DType::F32: std::memcpy(&dst[i], p + 4 * i, 4); break;
        case DType::BF16: std::memcpy(&h, p + 2 * i, 2); dst[i] = bf16_to_f32(h); break;
        case DType::F16: std::memcpy(&h, p + 2 * i, 2); dst[i] = f16_to_f32(h); break;
        default: break;
      }
    }
    Tensor t(dst, DType::F32, {n});
    m_.owned_.push_back(std::move(buf));
    return t;
  }

  // Reads every weight byte once: pages are faulted in now rather than during the first
  // tokens, and the same pass hashes the contents for the fingerprint that keys the KV cache.
  void read_and_fingerprint() {
    uint64_t total = 0;
    for (const auto& f : m_.files_) total += f->file().size();
    ProgressBar bar("loading " + fs::path(m_.dir).filename().string(), total);
    Sha256 fp;
    fp.update("hwledger-model-fingerprint-v1\n");
    fp.update(m_.config.to_json().dump());
    uint64_t done = 0;
    for (const auto& f : m_.files_) {
      XXH3_state_t* st = XXH3_createState();
      XXH3_128bits_reset(st);
      const MappedFile& mf = f->file();
      constexpr size_t kChunk = 16u << 20;
      for (size_t off = 0; off < mf.size(); off += kChunk) {
        size_t n = std::min(kChunk, mf.size() - off);
        mf.advise_willneed(off, n);
        XXH3_128bits_update(st, mf.data() + off, n);
        done += n;
        if (opts_.show_progress) bar.update(done);
      }
      XXH128_hash_t h = XXH3_128bits_digest(st);
      XXH3_freeState(st);
      fp.update(&h, sizeof(h));
      for (const auto& [name, e] : f->header().tensors) {
        fp.update(name);
        fp.update(e.dtype_name);
        for (int64_t d : e.shape) fp.update(&d, sizeof(d));
      }
    }
    bar.finish();
    m_.fingerprint = to_hex(fp.finish());
  }

  Model& m_;
  LoadOptions opts_;
  std::map<std::string, const SafetensorsFile*> where_;
  std::vector<Tensor> used_;
};

std::unique_ptr<Model> Model::load(const std::string& dir, const LoadOptions& opts) {
  auto m = std::make_unique<Model>();
  ModelLoader(*m, opts).load(dir);
  return m;
}

}  // namespace hwledger
