using Quantize.Kernels.Models;

namespace Quantize.Kernels.Tests.Support;

/// <summary>
/// ONNX's <c>Cast</c> from the narrow types (sub-byte integers, float4, float8) to wider ones, and
/// per-tensor <c>DequantizeLinear</c> of them, written from the type definitions in ONNX's IR.md,
/// Float8.md and the operator spec. They check our decoding of the narrow types against the
/// expected outputs of the backend tests where ONNX Runtime cannot run them: a wrong nibble order,
/// sign extension or exponent bias shows as a value that differs from ONNX's reference result.
/// </summary>
internal static class NarrowTypeReference
{
    public static bool IsNarrow(TensorElementType type) => type is TensorElementType.Int4 or TensorElementType.UInt4
        or TensorElementType.Int2 or TensorElementType.UInt2 or TensorElementType.Float4E2M1
        or TensorElementType.Float8E4M3FN or TensorElementType.Float8E4M3FNUZ or TensorElementType.Float8E5M2
        or TensorElementType.Float8E5M2FNUZ or TensorElementType.Float8E8M0;

    public static bool IsWideTarget(TensorElementType type) => type is TensorElementType.Float32
        or TensorElementType.Float16 or TensorElementType.Int8 or TensorElementType.UInt8;

    /// <summary>Null when <paramref name="output"/> is exactly <paramref name="input"/> cast to the output's type.</summary>
    public static string? CastDifference(TensorData input, TensorData output) =>
        Difference(input, Widen(input), output, "cast");

    /// <summary>
    /// Null when <paramref name="output"/> is exactly <c>(x - zeroPoint) * scale</c> with a single
    /// scale and zero point (the values in these tests are exact in every precision involved).
    /// </summary>
    public static string? DequantizeDifference(TensorData x, TensorData scale, TensorData? zeroPoint, TensorData output)
    {
        double s = TensorComparison.ToDoubles(scale).Single();
        double zero = zeroPoint is null ? 0 : Widen(zeroPoint).Single();
        return Difference(x, Widen(x).Select(v => (v - zero) * s).ToArray(), output, "DequantizeLinear");
    }

    private static string? Difference(TensorData input, double[] widened, TensorData output, string operation)
    {
        if (!input.Shape.SequenceEqual(output.Shape))
            return $"shape {TensorData.FormatShape(output.Shape)}, input has {TensorData.FormatShape(input.Shape)}";
        double[] actual = output.ElementType switch
        {
            TensorElementType.Int8 => output.AsSpan<sbyte>().ToArray().Select(v => (double)v).ToArray(),
            TensorElementType.UInt8 => output.AsSpan<byte>().ToArray().Select(v => (double)v).ToArray(),
            _ => TensorComparison.ToDoubles(output),
        };
        for (int i = 0; i < widened.Length; i++)
        {
            double expected = RoundTo(widened[i], output.ElementType);
            if (!(expected.Equals(actual[i]) || double.IsNaN(expected) && double.IsNaN(actual[i])))
                return $"element {i}: our {input.ElementType.DisplayName()} decoding gives {widened[i]:R}, ONNX's {operation} gives {actual[i]:R}";
        }
        return null;
    }

    private static double RoundTo(double value, TensorElementType type) => type switch
    {
        TensorElementType.Float32 => (float)value,
        TensorElementType.Float16 => (double)(Half)value,
        _ => value, // the integer types only take integers from Int4/UInt4/Int2/UInt2
    };

    /// <summary>Every element of a narrow-type tensor as a double.</summary>
    public static double[] Widen(TensorData data)
    {
        var bytes = data.Bytes;
        var values = new double[data.ElementCount];
        int bits = data.ElementType.BitsPerElement();
        for (int i = 0; i < values.Length; i++)
        {
            // Sub-byte elements are packed from the lowest bits of each byte up.
            int field = bits == 8 ? bytes[i] : (bytes[i * bits / 8] >> (i * bits % 8)) & ((1 << bits) - 1);
            values[i] = data.ElementType switch
            {
                TensorElementType.Int4 or TensorElementType.Int2 => field >= 1 << (bits - 1) ? field - (1 << bits) : field,
                TensorElementType.UInt4 or TensorElementType.UInt2 => field,
                TensorElementType.Float4E2M1 => Float4E2M1(field),
                _ => Float8.ToDouble((byte)field, data.ElementType),
            };
        }
        return values;
    }

    /// <summary>E2M1: sign, two exponent bits (bias 1), one mantissa bit; no infinity or NaN.</summary>
    private static double Float4E2M1(int bits)
    {
        int exponent = (bits >> 1) & 3;
        int mantissa = bits & 1;
        double magnitude = exponent == 0 ? mantissa * 0.5 : (1 + mantissa * 0.5) * Math.ScaleB(1.0, exponent - 1);
        return (bits & 8) != 0 ? -magnitude : magnitude;
    }
}
