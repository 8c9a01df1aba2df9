// tests/shim/roots/roots_holder.cpp — a shared object the host links (DT_NEEDED): a block kept
// only in one of its statics must survive the plug-in's unload (shim.roots).
namespace {
void* g_kept;
}
extern "C" void holder_keep(void* p) {
  g_kept = p;
}
extern "C" void* holder_get() {
  return g_kept;
}
