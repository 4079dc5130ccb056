using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// erf(x). float32: two minimax polynomials split at |x| = 0.921875 (odd polynomial below; 1 - exp(-p(|x|))
/// above), the algorithm ONNX Runtime's MLAS uses, within about one ulp. float64: Taylor series below 2.5,
/// the erfc continued fraction above, to about 1e-14 relative.
/// </summary>
internal readonly struct ErfKernel : IFloatKernel
{
    private const float Split = 0.921875f;

    // Beyond this erf(x) rounds to 1 in float32; clamping keeps the outer polynomial inside its fitted range.
    private const float Upper = 3.925f;

    private const float S0 = -5.99104969e-4f, S1 = 4.99339588e-3f, S2 = -2.67667342e-2f, S3 = 1.12818025e-1f, S4 = -3.76124859e-1f, S5 = 1.28379151e-1f;
    private const float B0 = 1.72948930e-5f, B1 = -3.83208680e-4f, B2 = 3.88393435e-3f, B3 = -2.42545605e-2f, B4 = 1.06777847e-1f, B5 = 6.34846687e-1f, B6 = 1.28717512e-1f;

    public float Apply(float x)
    {
        float t = MathF.Abs(x);
        if (t <= Split)
        {
            float s = x * x;
            float r = MathF.FusedMultiplyAdd(S0, s, S1);
            r = MathF.FusedMultiplyAdd(r, s, S2);
            r = MathF.FusedMultiplyAdd(r, s, S3);
            r = MathF.FusedMultiplyAdd(r, s, S4);
            r = MathF.FusedMultiplyAdd(r, s, S5);
            return MathF.FusedMultiplyAdd(r, x, x);
        }
        if (float.IsNaN(x)) return x;
        t = MathF.Min(t, Upper);
        float p = MathF.FusedMultiplyAdd(B0, t, B1);
        p = MathF.FusedMultiplyAdd(p, t, B2);
        p = MathF.FusedMultiplyAdd(p, t, B3);
        p = MathF.FusedMultiplyAdd(p, t, B4);
        p = MathF.FusedMultiplyAdd(p, t, B5);
        p = MathF.FusedMultiplyAdd(p, t, B6);
        p = MathF.FusedMultiplyAdd(p, t, t);
        return MathF.CopySign(1f - FastExp.NonPositive(-p), x);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector128<float> Apply(Vector128<float> x)
    {
        var t = Vector128.Abs(x);
        var s = x * x;
        var r = Vector128.FusedMultiplyAdd(Vector128.Create(S0), s, Vector128.Create(S1));
        r = Vector128.FusedMultiplyAdd(r, s, Vector128.Create(S2));
        r = Vector128.FusedMultiplyAdd(r, s, Vector128.Create(S3));
        r = Vector128.FusedMultiplyAdd(r, s, Vector128.Create(S4));
        r = Vector128.FusedMultiplyAdd(r, s, Vector128.Create(S5));
        var small = Vector128.FusedMultiplyAdd(r, x, x);

        var u = Vector128.Min(t, Vector128.Create(Upper));
        var p = Vector128.FusedMultiplyAdd(Vector128.Create(B0), u, Vector128.Create(B1));
        p = Vector128.FusedMultiplyAdd(p, u, Vector128.Create(B2));
        p = Vector128.FusedMultiplyAdd(p, u, Vector128.Create(B3));
        p = Vector128.FusedMultiplyAdd(p, u, Vector128.Create(B4));
        p = Vector128.FusedMultiplyAdd(p, u, Vector128.Create(B5));
        p = Vector128.FusedMultiplyAdd(p, u, Vector128.Create(B6));
        p = Vector128.FusedMultiplyAdd(p, u, u);
        var large = Vector128.CopySign(Vector128<float>.One - FastExp.NonPositive(-p), x);

        // NaN fails the comparison, so it takes the small branch, which keeps it NaN.
        return Vector128.ConditionalSelect(Vector128.GreaterThan(t, Vector128.Create(Split)), large, small);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<float> Apply(Vector256<float> x)
    {
        var t = Vector256.Abs(x);
        var s = x * x;
        var r = Vector256.FusedMultiplyAdd(Vector256.Create(S0), s, Vector256.Create(S1));
        r = Vector256.FusedMultiplyAdd(r, s, Vector256.Create(S2));
        r = Vector256.FusedMultiplyAdd(r, s, Vector256.Create(S3));
        r = Vector256.FusedMultiplyAdd(r, s, Vector256.Create(S4));
        r = Vector256.FusedMultiplyAdd(r, s, Vector256.Create(S5));
        var small = Vector256.FusedMultiplyAdd(r, x, x);

        var u = Vector256.Min(t, Vector256.Create(Upper));
        var p = Vector256.FusedMultiplyAdd(Vector256.Create(B0), u, Vector256.Create(B1));
        p = Vector256.FusedMultiplyAdd(p, u, Vector256.Create(B2));
        p = Vector256.FusedMultiplyAdd(p, u, Vector256.Create(B3));
        p = Vector256.FusedMultiplyAdd(p, u, Vector256.Create(B4));
        p = Vector256.FusedMultiplyAdd(p, u, Vector256.Create(B5));
        p = Vector256.FusedMultiplyAdd(p, u, Vector256.Create(B6));
        p = Vector256.FusedMultiplyAdd(p, u, u);
        var large = Vector256.CopySign(Vector256<float>.One - FastExp.NonPositive(-p), x);
        return Vector256.ConditionalSelect(Vector256.GreaterThan(t, Vector256.Create(Split)), large, small);
    }

    public double Apply(double x) => Erf(x);

    /// <summary>erf in float64.</summary>
    public static double Erf(double x)
    {
        double t = Math.Abs(x);
        if (double.IsNaN(x)) return x;
        if (t < 2.5)
        {
            // 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1)); at most a few digits lost to cancellation below 2.5.
            double sum = x, term = x, x2 = x * x;
            for (int n = 0; n < 200; n++)
            {
                term *= -x2 / (n + 1);
                double next = term / (2 * n + 3);
                sum += next;
                if (Math.Abs(next) <= 1e-17 * Math.Abs(sum)) break;
            }
            return sum * 1.1283791670955126;
        }
        if (t >= 6) return Math.CopySign(1.0, x);
        // erfc(t) = exp(-t^2) / sqrt(pi) / (t + (1/2) / (t + 1 / (t + (3/2) / (t + ...)))), evaluated from the tail.
        double f = t;
        for (int k = 60; k >= 1; k--) f = t + k * 0.5 / f;
        double erfc = Math.Exp(-t * t) / (1.7724538509055159 * f);
        return Math.CopySign(1.0 - erfc, x);
    }
}
