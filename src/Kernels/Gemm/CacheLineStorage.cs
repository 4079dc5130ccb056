namespace Quantize.Kernels.Gemm;

/// <summary>
/// Storage for packed weights whose start is on a cache line. The micro-kernels load a panel step 32 bytes at a time, and
/// a panel that straddles two lines pays a split load on every step. Large matrices (weights packed at load) go on the
/// pinned heap, where they never move, with an offset to the first 64-byte boundary; small ones (packed per run, such as
/// attention's operands) stay on the ordinary heap, unaligned, rather than filling the pinned heap with short-lived arrays.
/// </summary>
internal static class CacheLineStorage
{
    private const int LineBytes = 64;

    // The large object heap starts here; arrays below it are the ones .NET expects to be short-lived.
    private const int LargeBytes = 85_000;

    /// <summary>Zeroed storage for <paramref name="length"/> elements and where they start in it.</summary>
    public static unsafe (T[] Data, int Offset) Allocate<T>(long length) where T : unmanaged
    {
        if (length * sizeof(T) < LargeBytes) return (new T[length], 0);
        var data = GC.AllocateArray<T>((int)length + LineBytes / sizeof(T), pinned: true);
        fixed (T* p = data) return (data, LineOffset(p));
    }

    /// <summary>
    /// Elements from <paramref name="p"/> to the next 64-byte boundary (0 when it is on one): where a buffer with
    /// <c>64 / sizeof(T)</c> elements of slack can start its data on a cache line.
    /// </summary>
    public static unsafe int LineOffset<T>(T* p) where T : unmanaged => (int)((LineBytes - ((nint)p & (LineBytes - 1))) & (LineBytes - 1)) / sizeof(T);

    /// <summary><paramref name="data"/> itself when small, else a copy in storage from <see cref="Allocate{T}"/>.</summary>
    public static unsafe (T[] Data, int Offset) Place<T>(T[] data) where T : unmanaged
    {
        if ((long)data.Length * sizeof(T) < LargeBytes) return (data, 0);
        var (storage, offset) = Allocate<T>(data.Length);
        data.CopyTo(storage.AsSpan(offset));
        return (storage, offset);
    }
}
