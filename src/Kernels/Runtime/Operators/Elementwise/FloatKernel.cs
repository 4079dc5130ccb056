using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// One float elementwise function in each form the driver needs: scalar, 128-bit and 256-bit for float32,
/// and scalar float64. Parameters (alpha, beta...) live in the struct, read once at load.
/// </summary>
internal interface IFloatKernel
{
    float Apply(float x);

    Vector128<float> Apply(Vector128<float> x);

    Vector256<float> Apply(Vector256<float> x);

    double Apply(double x);
}

/// <summary>Runs an <see cref="IFloatKernel"/> over spans: the widest accelerated vector, the tail through one padded vector.</summary>
internal static class FloatKernel
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Map<TKernel>(TKernel kernel, ReadOnlySpan<float> x, Span<float> d)
        where TKernel : struct, IFloatKernel
    {
        if (d.Length < x.Length) throw new ArgumentException("The destination is shorter than the source.", nameof(d));
        ref float xs = ref MemoryMarshal.GetReference(x);
        ref float ds = ref MemoryMarshal.GetReference(d);
        int n = x.Length, i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
                kernel.Apply(Vector256.LoadUnsafe(ref xs, (nuint)i)).StoreUnsafe(ref ds, (nuint)i);
            if (i < n)
            {
                // The tail goes through the same vector code as the body, so an element's result does not depend on where it sits.
                Span<float> tail = stackalloc float[Vector256<float>.Count];
                tail.Clear();
                x[i..].CopyTo(tail);
                kernel.Apply(Vector256.Create<float>(tail)).CopyTo(tail);
                tail[..(n - i)].CopyTo(d[i..]);
            }
            return;
        }
        if (Vector128.IsHardwareAccelerated)
        {
            for (; i <= n - Vector128<float>.Count; i += Vector128<float>.Count)
                kernel.Apply(Vector128.LoadUnsafe(ref xs, (nuint)i)).StoreUnsafe(ref ds, (nuint)i);
            if (i < n)
            {
                Span<float> tail = stackalloc float[Vector128<float>.Count];
                tail.Clear();
                x[i..].CopyTo(tail);
                kernel.Apply(Vector128.Create<float>(tail)).CopyTo(tail);
                tail[..(n - i)].CopyTo(d[i..]);
            }
            return;
        }
        MapScalar(kernel, x, d);
    }

    /// <summary>
    /// <see cref="Map{TKernel}(TKernel, ReadOnlySpan{float}, Span{float})"/> over the first <paramref name="length"/> elements,
    /// split over <paramref name="threads"/> (every element goes through the same vector code either way).
    /// </summary>
    public static void Map<TKernel>(TKernel kernel, float[] x, float[] d, int length, int threads)
        where TKernel : struct, IFloatKernel =>
        ParallelRanges.ForElements(length, threads, (start, end) => Map(kernel, x.AsSpan(start, end - start), d.AsSpan(start, end - start)));

    /// <summary>The scalar twin of <see cref="Map{TKernel}(TKernel, ReadOnlySpan{float}, Span{float})"/>.</summary>
    public static void MapScalar<TKernel>(TKernel kernel, ReadOnlySpan<float> x, Span<float> d)
        where TKernel : struct, IFloatKernel
    {
        for (int i = 0; i < x.Length; i++) d[i] = kernel.Apply(x[i]);
    }

    public static void Map<TKernel>(TKernel kernel, ReadOnlySpan<double> x, Span<double> d)
        where TKernel : struct, IFloatKernel
    {
        for (int i = 0; i < x.Length; i++) d[i] = kernel.Apply(x[i]);
    }
}
