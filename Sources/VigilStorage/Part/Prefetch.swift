import CVigilSystem

/// Asks the processor to start loading `array[index]` into the caches, so
/// that a read of it a little later does not wait for memory. A hint only:
/// it changes nothing, and the address is never read through. That is also
/// why the address is taken out of the buffer's scope: with the C call
/// inside it, Swift would retain and release the array around every hint.
@inline(__always)
func prefetchElement<Element>(of array: [Element], at index: Int) {
    vigil_prefetch(array.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress! + index) })
}
