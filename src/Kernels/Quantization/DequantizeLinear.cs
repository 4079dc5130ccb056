using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Quantize.Kernels.Quantization;

/// <summary>
/// ONNX DequantizeLinear on spans: <c>y = (float(x) - zero_point) * scale</c> in float32, as ONNX's
/// reference computes it (the subtraction is exact for 16-bit and narrower types). One scale and zero
/// point for the span, or one per element. <see cref="DequantizeScalar"/> is the scalar twin.
/// </summary>
public static class DequantizeLinear
{
    /// <summary>The scalar reference.</summary>
    public static float DequantizeScalar(int x, float scale, int zeroPoint) => ((float)x - zeroPoint) * scale;

    /// <summary>Dequantizes int8 (or unpacked int4) values with one scale and zero point.</summary>
    public static void Dequantize(ReadOnlySpan<sbyte> x, float scale, int zeroPoint, Span<float> y) =>
        Run<sbyte, SByteStorage, UniformParameters>(x, new UniformParameters(scale, zeroPoint), y, VectorWidth.Vector256);

    /// <summary>Dequantizes uint8 (or unpacked uint4) values with one scale and zero point.</summary>
    public static void Dequantize(ReadOnlySpan<byte> x, float scale, int zeroPoint, Span<float> y) =>
        Run<byte, ByteStorage, UniformParameters>(x, new UniformParameters(scale, zeroPoint), y, VectorWidth.Vector256);

    /// <summary>Dequantizes int16 values with one scale and zero point.</summary>
    public static void Dequantize(ReadOnlySpan<short> x, float scale, int zeroPoint, Span<float> y) =>
        Run<short, Int16Storage, UniformParameters>(x, new UniformParameters(scale, zeroPoint), y, VectorWidth.Vector256);

    /// <summary>Dequantizes uint16 values with one scale and zero point.</summary>
    public static void Dequantize(ReadOnlySpan<ushort> x, float scale, int zeroPoint, Span<float> y) =>
        Run<ushort, UInt16Storage, UniformParameters>(x, new UniformParameters(scale, zeroPoint), y, VectorWidth.Vector256);

    /// <summary>Dequantizes int32 values (zero point 0 in ONNX) with one scale: <c>float(x) * scale</c>.</summary>
    public static void Dequantize(ReadOnlySpan<int> x, float scale, int zeroPoint, Span<float> y)
    {
        if (y.Length < x.Length) throw new ArgumentException("The destination is shorter than the source.", nameof(y));
        for (int i = 0; i < x.Length; i++) y[i] = ((float)x[i] - zeroPoint) * scale;
    }

    /// <summary>Dequantizes element i with <c>scales[i]</c> and <c>zeroPoints[i]</c> (int8 or unpacked int4).</summary>
    public static void Dequantize(ReadOnlySpan<sbyte> x, ReadOnlySpan<float> scales, ReadOnlySpan<int> zeroPoints, Span<float> y) =>
        Run<sbyte, SByteStorage, ElementwiseParameters>(x, new ElementwiseParameters(scales, zeroPoints, x.Length), y, VectorWidth.Vector256);

    /// <summary>Dequantizes element i with <c>scales[i]</c> and <c>zeroPoints[i]</c> (uint8 or unpacked uint4).</summary>
    public static void Dequantize(ReadOnlySpan<byte> x, ReadOnlySpan<float> scales, ReadOnlySpan<int> zeroPoints, Span<float> y) =>
        Run<byte, ByteStorage, ElementwiseParameters>(x, new ElementwiseParameters(scales, zeroPoints, x.Length), y, VectorWidth.Vector256);

    /// <summary>Dequantizes element i with <c>scales[i]</c> and <c>zeroPoints[i]</c> (int16).</summary>
    public static void Dequantize(ReadOnlySpan<short> x, ReadOnlySpan<float> scales, ReadOnlySpan<int> zeroPoints, Span<float> y) =>
        Run<short, Int16Storage, ElementwiseParameters>(x, new ElementwiseParameters(scales, zeroPoints, x.Length), y, VectorWidth.Vector256);

    /// <summary>Dequantizes element i with <c>scales[i]</c> and <c>zeroPoints[i]</c> (uint16).</summary>
    public static void Dequantize(ReadOnlySpan<ushort> x, ReadOnlySpan<float> scales, ReadOnlySpan<int> zeroPoints, Span<float> y) =>
        Run<ushort, UInt16Storage, ElementwiseParameters>(x, new ElementwiseParameters(scales, zeroPoints, x.Length), y, VectorWidth.Vector256);

    /// <summary>One scale and zero point, at most <paramref name="width"/> wide (tests compare each width with the scalar twin).</summary>
    internal static void DequantizeUniform<T, TStorage>(ReadOnlySpan<T> x, float scale, int zeroPoint, Span<float> y, VectorWidth width)
        where T : unmanaged
        where TStorage : IQuantizedStorage<T> =>
        Run<T, TStorage, UniformParameters>(x, new UniformParameters(scale, zeroPoint), y, width);

    /// <summary>A scale and zero point per element, at most <paramref name="width"/> wide.</summary>
    internal static void DequantizeElementwise<T, TStorage>(ReadOnlySpan<T> x, ReadOnlySpan<float> scales, ReadOnlySpan<int> zeroPoints, Span<float> y, VectorWidth width)
        where T : unmanaged
        where TStorage : IQuantizedStorage<T> =>
        Run<T, TStorage, ElementwiseParameters>(x, new ElementwiseParameters(scales, zeroPoints, x.Length), y, width);

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static void Run<T, TStorage, TParameters>(ReadOnlySpan<T> x, TParameters parameters, Span<float> y, VectorWidth width)
        where T : unmanaged
        where TStorage : IQuantizedStorage<T>
        where TParameters : IQuantizationParameters, allows ref struct
    {
        if (y.Length < x.Length) throw new ArgumentException("The destination is shorter than the source.", nameof(y));
        int n = x.Length;
        ref T xs = ref MemoryMarshal.GetReference(x);
        ref float ys = ref MemoryMarshal.GetReference(y);
        int i = 0;

        if (width >= VectorWidth.Vector256 && Vector256.IsHardwareAccelerated && n >= IQuantizedStorage<T>.Block256)
        {
            for (; ; i += IQuantizedStorage<T>.Block256)
            {
                if (i > n - IQuantizedStorage<T>.Block256) i = n - IQuantizedStorage<T>.Block256;
                var (a, b, c, d) = TStorage.Load256(ref Unsafe.Add(ref xs, i));
                Step(a, parameters.Scale256(i), parameters.ZeroPoint256(i)).StoreUnsafe(ref ys, (nuint)i);
                Step(b, parameters.Scale256(i + 8), parameters.ZeroPoint256(i + 8)).StoreUnsafe(ref ys, (nuint)(i + 8));
                Step(c, parameters.Scale256(i + 16), parameters.ZeroPoint256(i + 16)).StoreUnsafe(ref ys, (nuint)(i + 16));
                Step(d, parameters.Scale256(i + 24), parameters.ZeroPoint256(i + 24)).StoreUnsafe(ref ys, (nuint)(i + 24));
                if (i == n - IQuantizedStorage<T>.Block256) return;
            }
        }

        if (width >= VectorWidth.Vector128 && Vector128.IsHardwareAccelerated && n >= IQuantizedStorage<T>.Block128)
        {
            for (; ; i += IQuantizedStorage<T>.Block128)
            {
                if (i > n - IQuantizedStorage<T>.Block128) i = n - IQuantizedStorage<T>.Block128;
                var (a, b, c, d) = TStorage.Load128(ref Unsafe.Add(ref xs, i));
                Step(a, parameters.Scale128(i), parameters.ZeroPoint128(i)).StoreUnsafe(ref ys, (nuint)i);
                Step(b, parameters.Scale128(i + 4), parameters.ZeroPoint128(i + 4)).StoreUnsafe(ref ys, (nuint)(i + 4));
                Step(c, parameters.Scale128(i + 8), parameters.ZeroPoint128(i + 8)).StoreUnsafe(ref ys, (nuint)(i + 8));
                Step(d, parameters.Scale128(i + 12), parameters.ZeroPoint128(i + 12)).StoreUnsafe(ref ys, (nuint)(i + 12));
                if (i == n - IQuantizedStorage<T>.Block128) return;
            }
        }

        for (; i < n; i++)
            Unsafe.Add(ref ys, i) = DequantizeScalar(TStorage.ToInt32(Unsafe.Add(ref xs, i)), parameters.Scale(i), parameters.ZeroPoint(i));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Step(Vector256<int> x, Vector256<float> scale, Vector256<float> zeroPoint) =>
        (Vector256.ConvertToSingle(x) - zeroPoint) * scale;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Step(Vector128<int> x, Vector128<float> scale, Vector128<float> zeroPoint) =>
        (Vector128.ConvertToSingle(x) - zeroPoint) * scale;
}
