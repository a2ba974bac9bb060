// Debian's kotlinx-coroutines (1.0.1) predates the opt-in marker the generated bindings import;
// on Android and iOS the apps bring a current kotlinx-coroutines, which has it.
package kotlinx.coroutines

@RequiresOptIn
@Retention(AnnotationRetention.BINARY)
annotation class DelicateCoroutinesApi
