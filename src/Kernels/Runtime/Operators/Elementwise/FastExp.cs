using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// exp(x) for x &lt;= 0 in float32 (softmax after subtracting the row maximum; erf's 1 - exp(-p)), within about one ulp:
/// x = n ln 2 + r with |r| &lt;= ln 2 / 2 (ln 2 split in two so r is exact), exp(r) by its degree-7 Taylor polynomial
/// (truncation below 1e-8 relative), times 2^n built in the exponent bits. Below -87.3 (where 2^n would leave the
/// normal range) the result is 0; NaN stays NaN. About 4x faster than <c>Vector256.Exp</c> here, which is what the
/// transformer activations spend their time in. The scalar form is the same arithmetic, for the vector forms' twin tests.
/// </summary>
internal static class FastExp
{
    private const float Log2E = 1.44269504f;
    private const float Ln2High = 0.693359375f; // ln 2 rounded to 9 bits: n * Ln2High is exact
    private const float Ln2Low = -2.12194440e-4f;
    private const float Lowest = -87.3f;
    private const float C2 = 1f / 2, C3 = 1f / 6, C4 = 1f / 24, C5 = 1f / 120, C6 = 1f / 720, C7 = 1f / 5040;

    public static float NonPositive(float x)
    {
        if (x < Lowest) return 0f;
        float n = MathF.Round(x * Log2E);
        float r = MathF.FusedMultiplyAdd(n, -Ln2High, x);
        r = MathF.FusedMultiplyAdd(n, -Ln2Low, r);
        float p = MathF.FusedMultiplyAdd(C7, r, C6);
        p = MathF.FusedMultiplyAdd(p, r, C5);
        p = MathF.FusedMultiplyAdd(p, r, C4);
        p = MathF.FusedMultiplyAdd(p, r, C3);
        p = MathF.FusedMultiplyAdd(p, r, C2);
        p = MathF.FusedMultiplyAdd(p, r, 1f);
        p = MathF.FusedMultiplyAdd(p, r, 1f);
        if (float.IsNaN(p)) return p;
        return p * BitConverter.Int32BitsToSingle(((int)n + 127) << 23);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> NonPositive(Vector256<float> x)
    {
        var n = Vector256.Round(x * Vector256.Create(Log2E));
        var r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-Ln2High), x);
        r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-Ln2Low), r);
        var p = Vector256.FusedMultiplyAdd(Vector256.Create(C7), r, Vector256.Create(C6));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(C5));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(C4));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(C3));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(C2));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256<float>.One);
        p = Vector256.FusedMultiplyAdd(p, r, Vector256<float>.One);
        // NaN converts to int.MinValue and makes garbage of the scale; p itself is NaN then, and NaN times anything is NaN.
        var scale = Vector256.ShiftLeft(Vector256.ConvertToInt32(n) + Vector256.Create(127), 23).AsSingle();
        return Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256.Create(Lowest)), Vector256<float>.Zero, p * scale);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> NonPositive(Vector128<float> x)
    {
        var n = Vector128.Round(x * Vector128.Create(Log2E));
        var r = Vector128.FusedMultiplyAdd(n, Vector128.Create(-Ln2High), x);
        r = Vector128.FusedMultiplyAdd(n, Vector128.Create(-Ln2Low), r);
        var p = Vector128.FusedMultiplyAdd(Vector128.Create(C7), r, Vector128.Create(C6));
        p = Vector128.FusedMultiplyAdd(p, r, Vector128.Create(C5));
        p = Vector128.FusedMultiplyAdd(p, r, Vector128.Create(C4));
        p = Vector128.FusedMultiplyAdd(p, r, Vector128.Create(C3));
        p = Vector128.FusedMultiplyAdd(p, r, Vector128.Create(C2));
        p = Vector128.FusedMultiplyAdd(p, r, Vector128<float>.One);
        p = Vector128.FusedMultiplyAdd(p, r, Vector128<float>.One);
        var scale = Vector128.ShiftLeft(Vector128.ConvertToInt32(n) + Vector128.Create(127), 23).AsSingle();
        return Vector128.ConditionalSelect(Vector128.LessThan(x, Vector128.Create(Lowest)), Vector128<float>.Zero, p * scale);
    }
}
