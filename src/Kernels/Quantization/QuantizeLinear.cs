using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Quantize.Kernels.Quantization;

/// <summary>
/// ONNX QuantizeLinear on spans: <c>y = saturate(round_half_even(x / scale) + zero_point)</c>, with one
/// scale and zero point for the span or one per element. The division (not a multiplication by the
/// reciprocal) and the rounding are those of ONNX's reference, so results are bit-exact with it.
/// Each width has the same steps as <see cref="QuantizeScalar"/>, its scalar twin.
/// </summary>
public static class QuantizeLinear
{
    /// <summary>The scalar reference: quantizes one value into <c>[min, max]</c>.</summary>
    public static int QuantizeScalar(float x, float scale, int zeroPoint, int min, int max)
    {
        // Rounding first and adding the zero point after, as the reference does; clamping in float
        // keeps huge quotients from overflowing the int conversion (NaN converts to 0).
        float r = MathF.Round(x / scale, MidpointRounding.ToEven) + zeroPoint;
        return (int)Math.Clamp(r, min, max);
    }

    /// <summary>Quantizes <paramref name="x"/> with one scale and zero point into int8 (or int4 values, with an int4 range).</summary>
    public static void Quantize(ReadOnlySpan<float> x, float scale, int zeroPoint, Span<sbyte> y, QuantizedRange range) =>
        Run<sbyte, SByteStorage, UniformParameters>(x, new UniformParameters(scale, zeroPoint), y, range);

    /// <summary>Quantizes <paramref name="x"/> with one scale and zero point into uint8 (or uint4 values, with a uint4 range).</summary>
    public static void Quantize(ReadOnlySpan<float> x, float scale, int zeroPoint, Span<byte> y, QuantizedRange range) =>
        Run<byte, ByteStorage, UniformParameters>(x, new UniformParameters(scale, zeroPoint), y, range);

    /// <summary>Quantizes <paramref name="x"/> with one scale and zero point into int16.</summary>
    public static void Quantize(ReadOnlySpan<float> x, float scale, int zeroPoint, Span<short> y, QuantizedRange range) =>
        Run<short, Int16Storage, UniformParameters>(x, new UniformParameters(scale, zeroPoint), y, range);

    /// <summary>Quantizes <paramref name="x"/> with one scale and zero point into uint16.</summary>
    public static void Quantize(ReadOnlySpan<float> x, float scale, int zeroPoint, Span<ushort> y, QuantizedRange range) =>
        Run<ushort, UInt16Storage, UniformParameters>(x, new UniformParameters(scale, zeroPoint), y, range);

    /// <summary>Quantizes element i with <c>scales[i]</c> and <c>zeroPoints[i]</c> into int8 (or int4 values).</summary>
    public static void Quantize(ReadOnlySpan<float> x, ReadOnlySpan<float> scales, ReadOnlySpan<int> zeroPoints, Span<sbyte> y, QuantizedRange range) =>
        Run<sbyte, SByteStorage, ElementwiseParameters>(x, new ElementwiseParameters(scales, zeroPoints, x.Length), y, range);

    /// <summary>Quantizes element i with <c>scales[i]</c> and <c>zeroPoints[i]</c> into uint8 (or uint4 values).</summary>
    public static void Quantize(ReadOnlySpan<float> x, ReadOnlySpan<float> scales, ReadOnlySpan<int> zeroPoints, Span<byte> y, QuantizedRange range) =>
        Run<byte, ByteStorage, ElementwiseParameters>(x, new ElementwiseParameters(scales, zeroPoints, x.Length), y, range);

    /// <summary>Quantizes element i with <c>scales[i]</c> and <c>zeroPoints[i]</c> into int16.</summary>
    public static void Quantize(ReadOnlySpan<float> x, ReadOnlySpan<float> scales, ReadOnlySpan<int> zeroPoints, Span<short> y, QuantizedRange range) =>
        Run<short, Int16Storage, ElementwiseParameters>(x, new ElementwiseParameters(scales, zeroPoints, x.Length), y, range);

    /// <summary>Quantizes element i with <c>scales[i]</c> and <c>zeroPoints[i]</c> into uint16.</summary>
    public static void Quantize(ReadOnlySpan<float> x, ReadOnlySpan<float> scales, ReadOnlySpan<int> zeroPoints, Span<ushort> y, QuantizedRange range) =>
        Run<ushort, UInt16Storage, ElementwiseParameters>(x, new ElementwiseParameters(scales, zeroPoints, x.Length), y, range);

    /// <summary>The scalar twin of every overload, for tests and tails.</summary>
    internal static void QuantizeReference<T, TStorage>(ReadOnlySpan<float> x, ReadOnlySpan<float> scales, ReadOnlySpan<int> zeroPoints, Span<T> y, QuantizedRange range)
        where T : unmanaged
        where TStorage : IQuantizedStorage<T>
    {
        for (int i = 0; i < x.Length; i++)
        {
            float scale = scales.Length == 1 ? scales[0] : scales[i];
            int zeroPoint = zeroPoints.Length == 1 ? zeroPoints[0] : zeroPoints[i];
            y[i] = TStorage.FromInt32(QuantizeScalar(x[i], scale, zeroPoint, range.Min, range.Max));
        }
    }

    /// <summary>One scale and zero point, at most <paramref name="width"/> wide (tests compare each width with the scalar twin).</summary>
    internal static void QuantizeUniform<T, TStorage>(ReadOnlySpan<float> x, float scale, int zeroPoint, Span<T> y, QuantizedRange range, VectorWidth width)
        where T : unmanaged
        where TStorage : IQuantizedStorage<T> =>
        Run<T, TStorage, UniformParameters>(x, new UniformParameters(scale, zeroPoint), y, range, width);

    /// <summary>A scale and zero point per element, at most <paramref name="width"/> wide.</summary>
    internal static void QuantizeElementwise<T, TStorage>(ReadOnlySpan<float> x, ReadOnlySpan<float> scales, ReadOnlySpan<int> zeroPoints, Span<T> y, QuantizedRange range, VectorWidth width)
        where T : unmanaged
        where TStorage : IQuantizedStorage<T> =>
        Run<T, TStorage, ElementwiseParameters>(x, new ElementwiseParameters(scales, zeroPoints, x.Length), y, range, width);

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static void Run<T, TStorage, TParameters>(ReadOnlySpan<float> x, TParameters parameters, Span<T> y, QuantizedRange range, VectorWidth width = VectorWidth.Vector256)
        where T : unmanaged
        where TStorage : IQuantizedStorage<T>
        where TParameters : IQuantizationParameters, allows ref struct
    {
        if (y.Length < x.Length) throw new ArgumentException("The destination is shorter than the source.", nameof(y));
        int n = x.Length;
        ref float xs = ref MemoryMarshal.GetReference(x);
        ref T ys = ref MemoryMarshal.GetReference(y);
        int i = 0;

        if (width >= VectorWidth.Vector256 && Vector256.IsHardwareAccelerated && n >= IQuantizedStorage<T>.Block256)
        {
            var min = Vector256.Create((float)range.Min);
            var max = Vector256.Create((float)range.Max);
            // The last block overlaps the one before it instead of leaving a scalar tail.
            for (; ; i += IQuantizedStorage<T>.Block256)
            {
                if (i > n - IQuantizedStorage<T>.Block256) i = n - IQuantizedStorage<T>.Block256;
                TStorage.Store(
                    Step(Vector256.LoadUnsafe(ref xs, (nuint)i), parameters.Scale256(i), parameters.ZeroPoint256(i), min, max),
                    Step(Vector256.LoadUnsafe(ref xs, (nuint)(i + 8)), parameters.Scale256(i + 8), parameters.ZeroPoint256(i + 8), min, max),
                    Step(Vector256.LoadUnsafe(ref xs, (nuint)(i + 16)), parameters.Scale256(i + 16), parameters.ZeroPoint256(i + 16), min, max),
                    Step(Vector256.LoadUnsafe(ref xs, (nuint)(i + 24)), parameters.Scale256(i + 24), parameters.ZeroPoint256(i + 24), min, max),
                    ref Unsafe.Add(ref ys, i));
                if (i == n - IQuantizedStorage<T>.Block256) return;
            }
        }

        if (width >= VectorWidth.Vector128 && Vector128.IsHardwareAccelerated && n >= IQuantizedStorage<T>.Block128)
        {
            var min = Vector128.Create((float)range.Min);
            var max = Vector128.Create((float)range.Max);
            for (; ; i += IQuantizedStorage<T>.Block128)
            {
                if (i > n - IQuantizedStorage<T>.Block128) i = n - IQuantizedStorage<T>.Block128;
                TStorage.Store(
                    Step(Vector128.LoadUnsafe(ref xs, (nuint)i), parameters.Scale128(i), parameters.ZeroPoint128(i), min, max),
                    Step(Vector128.LoadUnsafe(ref xs, (nuint)(i + 4)), parameters.Scale128(i + 4), parameters.ZeroPoint128(i + 4), min, max),
                    Step(Vector128.LoadUnsafe(ref xs, (nuint)(i + 8)), parameters.Scale128(i + 8), parameters.ZeroPoint128(i + 8), min, max),
                    Step(Vector128.LoadUnsafe(ref xs, (nuint)(i + 12)), parameters.Scale128(i + 12), parameters.ZeroPoint128(i + 12), min, max),
                    ref Unsafe.Add(ref ys, i));
                if (i == n - IQuantizedStorage<T>.Block128) return;
            }
        }

        for (; i < n; i++)
            Unsafe.Add(ref ys, i) = TStorage.FromInt32(QuantizeScalar(Unsafe.Add(ref xs, i), parameters.Scale(i), parameters.ZeroPoint(i), range.Min, range.Max));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Step(Vector256<float> x, Vector256<float> scale, Vector256<float> zeroPoint, Vector256<float> min, Vector256<float> max) =>
        Vector256.ConvertToInt32(Vector256.Min(Vector256.Max(Vector256.Round(x / scale) + zeroPoint, min), max));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> Step(Vector128<float> x, Vector128<float> scale, Vector128<float> zeroPoint, Vector128<float> min, Vector128<float> max) =>
        Vector128.ConvertToInt32(Vector128.Min(Vector128.Max(Vector128.Round(x / scale) + zeroPoint, min), max));
}

/// <summary>Vector widths a kernel driver may use.</summary>
internal enum VectorWidth
{
    Scalar,
    Vector128,
    Vector256,
}

/// <summary>Where the driver gets the scale and zero point of element i (zero points as floats: they are added before clamping).</summary>
internal interface IQuantizationParameters
{
    float Scale(int i);
    int ZeroPoint(int i);
    Vector256<float> Scale256(int i);
    Vector256<float> ZeroPoint256(int i);
    Vector128<float> Scale128(int i);
    Vector128<float> ZeroPoint128(int i);
}

internal readonly struct UniformParameters(float scale, int zeroPoint) : IQuantizationParameters
{
    private readonly float _scale = scale;
    private readonly int _zeroPoint = zeroPoint;

    public float Scale(int i) => _scale;
    public int ZeroPoint(int i) => _zeroPoint;
    public Vector256<float> Scale256(int i) => Vector256.Create(_scale);
    public Vector256<float> ZeroPoint256(int i) => Vector256.Create((float)_zeroPoint);
    public Vector128<float> Scale128(int i) => Vector128.Create(_scale);
    public Vector128<float> ZeroPoint128(int i) => Vector128.Create((float)_zeroPoint);
}

internal readonly ref struct ElementwiseParameters : IQuantizationParameters
{
    private readonly ReadOnlySpan<float> _scales;
    private readonly ReadOnlySpan<int> _zeroPoints;

    public ElementwiseParameters(ReadOnlySpan<float> scales, ReadOnlySpan<int> zeroPoints, int length)
    {
        if (scales.Length < length || zeroPoints.Length < length)
            throw new ArgumentException("Elementwise quantization needs a scale and a zero point for every element.");
        _scales = scales;
        _zeroPoints = zeroPoints;
    }

    public float Scale(int i) => _scales[i];
    public int ZeroPoint(int i) => _zeroPoints[i];
    public Vector256<float> Scale256(int i) => Vector256.LoadUnsafe(ref MemoryMarshal.GetReference(_scales), (nuint)i);
    public Vector256<float> ZeroPoint256(int i) => Vector256.ConvertToSingle(Vector256.LoadUnsafe(ref MemoryMarshal.GetReference(_zeroPoints), (nuint)i));
    public Vector128<float> Scale128(int i) => Vector128.LoadUnsafe(ref MemoryMarshal.GetReference(_scales), (nuint)i);
    public Vector128<float> ZeroPoint128(int i) => Vector128.ConvertToSingle(Vector128.LoadUnsafe(ref MemoryMarshal.GetReference(_zeroPoints), (nuint)i));
}
