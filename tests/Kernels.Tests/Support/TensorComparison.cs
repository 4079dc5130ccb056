using System.Buffers.Binary;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Tests.Support;

/// <summary>
/// Compares two decoded tensors the way ONNX's backend test runner does: same element type and
/// shape, then floating-point values with <c>allclose(rtol, atol)</c> (NaN equal to NaN) after
/// widening every float format to double, and everything else byte for byte.
/// </summary>
internal static class TensorComparison
{
    public const double DefaultRelativeTolerance = 1e-3;
    public const double DefaultAbsoluteTolerance = 1e-7;

    /// <summary>Null when <paramref name="actual"/> matches <paramref name="expected"/>; otherwise the first difference.</summary>
    public static string? Difference(TensorData expected, TensorData actual,
        double rtol = DefaultRelativeTolerance, double atol = DefaultAbsoluteTolerance)
    {
        if (expected.ElementType != actual.ElementType)
            return $"element type {actual.ElementType.DisplayName()}, expected {expected.ElementType.DisplayName()}";
        if (!expected.Shape.SequenceEqual(actual.Shape))
            return $"shape {TensorData.FormatShape(actual.Shape)}, expected {TensorData.FormatShape(expected.Shape)}";

        if (expected.ElementType == TensorElementType.String)
        {
            for (int i = 0; i < expected.Strings.Count; i++)
            {
                if (!expected.Strings[i].AsSpan().SequenceEqual(actual.Strings[i]))
                    return $"string {i} differs";
            }
            return null;
        }

        // Packed sub-byte floats (float4e2m1) are compared bit for bit, like the integers.
        if (expected.ElementType.IsFloatingPoint() && expected.ElementType.BitsPerElement() >= 8
            || expected.ElementType is TensorElementType.Complex64 or TensorElementType.Complex128)
        {
            double[] e = ToDoubles(expected), a = ToDoubles(actual);
            for (int i = 0; i < e.Length; i++)
            {
                if (!Close(e[i], a[i], rtol, atol))
                    return $"value {i} is {a[i]:R}, expected {e[i]:R} (rtol {rtol}, atol {atol})";
            }
            return null;
        }

        var eb = expected.Bytes;
        var ab = actual.Bytes;
        int mismatch = eb.CommonPrefixLength(ab);
        return mismatch == eb.Length && eb.Length == ab.Length ? null : $"byte {mismatch} is 0x{ab[mismatch]:X2}, expected 0x{eb[mismatch]:X2}";
    }

    /// <summary>True when the two tensors hold the same type, shape and bytes (strings byte for byte).</summary>
    public static bool BitwiseEqual(TensorData a, TensorData b)
    {
        if (a.ElementType != b.ElementType || !a.Shape.SequenceEqual(b.Shape)) return false;
        if (a.ElementType == TensorElementType.String)
            return a.Strings.Count == b.Strings.Count && a.Strings.Zip(b.Strings).All(p => p.First.AsSpan().SequenceEqual(p.Second));
        return a.Bytes.SequenceEqual(b.Bytes);
    }

    /// <summary>numpy's <c>isclose</c>: |a - e| &lt;= atol + rtol * |e|, NaN equal to NaN, infinities equal only to themselves.</summary>
    public static bool Close(double expected, double actual, double rtol, double atol)
    {
        if (double.IsNaN(expected) || double.IsNaN(actual)) return double.IsNaN(expected) && double.IsNaN(actual);
        if (double.IsInfinity(expected) || double.IsInfinity(actual)) return expected == actual;
        return Math.Abs(actual - expected) <= atol + rtol * Math.Abs(expected);
    }

    /// <summary>Every element of a floating-point tensor widened to double (complex: real and imaginary parts in turn).</summary>
    public static double[] ToDoubles(TensorData data)
    {
        var bytes = data.Bytes;
        return data.ElementType switch
        {
            TensorElementType.Float32 or TensorElementType.Complex64 => Decode(bytes, 4, b => BinaryPrimitives.ReadSingleLittleEndian(b)),
            TensorElementType.Float64 or TensorElementType.Complex128 => Decode(bytes, 8, BinaryPrimitives.ReadDoubleLittleEndian),
            TensorElementType.Float16 => Decode(bytes, 2, b => (double)BinaryPrimitives.ReadHalfLittleEndian(b)),
            TensorElementType.BFloat16 => Decode(bytes, 2, b => BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(b) << 16)),
            TensorElementType.Float8E4M3FN or TensorElementType.Float8E4M3FNUZ or TensorElementType.Float8E5M2
                or TensorElementType.Float8E5M2FNUZ or TensorElementType.Float8E8M0 => Decode(bytes, 1, b => Float8.ToDouble(b[0], data.ElementType)),
            _ => throw new ArgumentException($"{data.ElementType.DisplayName()} is not a floating-point type.", nameof(data)),
        };
    }

    private delegate double Reader(ReadOnlySpan<byte> bytes);

    private static double[] Decode(ReadOnlySpan<byte> bytes, int size, Reader read)
    {
        var values = new double[bytes.Length / size];
        for (int i = 0; i < values.Length; i++) values[i] = read(bytes.Slice(i * size, size));
        return values;
    }
}

/// <summary>The 8-bit float formats of ONNX, decoded from their definitions (ONNX docs/Float8.md, OCP MX spec).</summary>
internal static class Float8
{
    public static double ToDouble(byte bits, TensorElementType type) => type switch
    {
        TensorElementType.Float8E4M3FN => Decode(bits, exponentBits: 4, bias: 7, nanIsNegativeZero: false, hasInfinity: false, allOnesIsNaN: true),
        TensorElementType.Float8E4M3FNUZ => Decode(bits, exponentBits: 4, bias: 8, nanIsNegativeZero: true, hasInfinity: false, allOnesIsNaN: false),
        TensorElementType.Float8E5M2 => Decode(bits, exponentBits: 5, bias: 15, nanIsNegativeZero: false, hasInfinity: true, allOnesIsNaN: false),
        TensorElementType.Float8E5M2FNUZ => Decode(bits, exponentBits: 5, bias: 16, nanIsNegativeZero: true, hasInfinity: false, allOnesIsNaN: false),
        // E8M0: an unsigned power of two, 2^(bits - 127); 0xFF is NaN.
        TensorElementType.Float8E8M0 => bits == 0xFF ? double.NaN : Math.ScaleB(1.0, bits - 127),
        _ => throw new ArgumentException($"{type.DisplayName()} is not an 8-bit float.", nameof(type)),
    };

    private static double Decode(byte bits, int exponentBits, int bias, bool nanIsNegativeZero, bool hasInfinity, bool allOnesIsNaN)
    {
        int mantissaBits = 7 - exponentBits;
        bool negative = (bits & 0x80) != 0;
        int exponent = (bits >> mantissaBits) & ((1 << exponentBits) - 1);
        int mantissa = bits & ((1 << mantissaBits) - 1);
        int maxExponent = (1 << exponentBits) - 1;

        if (nanIsNegativeZero && bits == 0x80) return double.NaN;
        if (allOnesIsNaN && (bits & 0x7F) == 0x7F) return double.NaN;
        if (hasInfinity && exponent == maxExponent)
            return mantissa == 0 ? (negative ? double.NegativeInfinity : double.PositiveInfinity) : double.NaN;

        double magnitude = exponent == 0
            ? Math.ScaleB(mantissa, 1 - bias - mantissaBits)
            : Math.ScaleB((1 << mantissaBits) + mantissa, exponent - bias - mantissaBits);
        return negative ? -magnitude : magnitude;
    }
}
