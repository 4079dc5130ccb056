using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>LeakyRelu, HardSigmoid, HardSwish and Gelu: parameterized activations, vectorized for float32 (float16 via float32).</summary>
[OnnxOperator("LeakyRelu", 1)]
[OnnxOperator("HardSigmoid", 1)]
[OnnxOperator("HardSwish", 14)]
[OnnxOperator("Gelu", 20)]
[OnnxOperator("Gelu", 1, Planning.PlanBuilder.FusedDomain)]
internal sealed class Activation : Operator
{
    private readonly string _op;
    private readonly LeakyReluKernel _leaky;
    private readonly HardSigmoidKernel _hard;
    private readonly bool _tanh;

    private Activation(string op, LeakyReluKernel leaky, HardSigmoidKernel hard, bool tanh)
    {
        _op = op;
        _leaky = leaky;
        _hard = hard;
        _tanh = tanh;
    }

    public static Operator Create(OperatorBuildContext context)
    {
        string op = context.Node.OpType;
        bool tanh = false;
        if (op == "Gelu")
        {
            string approximate = context.String("approximate", "none");
            if (approximate is not ("none" or "tanh")) throw context.Unsupported($"Gelu approximate='{approximate}' (expected 'none' or 'tanh')");
            tanh = approximate == "tanh";
        }
        var hard = op == "HardSwish"
            ? new HardSigmoidKernel(1f / 6, 0.5f, swish: true)
            : new HardSigmoidKernel(context.Float("alpha", 0.2f), context.Float("beta", 0.5f), swish: false);
        return new Activation(op, new LeakyReluKernel(context.Float("alpha", 0.01f)), hard, tanh);
    }

    public override void Run(OperatorCall call)
    {
        var x = call.Input(0);
        switch (x.ElementType)
        {
            case TensorElementType.Float32:
            {
                var source = (float[])x.Buffer.Data;
                var target = (float[])call.Output(0, x.ElementType, x.ShapeArray).Buffer.Data;
                int n = x.Length, threads = call.Context.DegreeOfParallelism;
                switch (_op)
                {
                    case "LeakyRelu": FloatKernel.Map(_leaky, source, target, n, threads); break;
                    case "Gelu" when _tanh: FloatKernel.Map(default(GeluTanhKernel), source, target, n, threads); break;
                    case "Gelu": FloatKernel.Map(default(GeluKernel), source, target, n, threads); break;
                    default: FloatKernel.Map(_hard, source, target, n, threads); break;
                }
                break;
            }
            case TensorElementType.Float64:
            {
                var source = x.AsSpan<double>();
                var target = call.Output(0, x.ElementType, x.ShapeArray).AsSpan<double>();
                switch (_op)
                {
                    case "LeakyRelu": FloatKernel.Map(_leaky, source, target); break;
                    case "Gelu" when _tanh: FloatKernel.Map(default(GeluTanhKernel), source, target); break;
                    case "Gelu": FloatKernel.Map(default(GeluKernel), source, target); break;
                    default: FloatKernel.Map(_hard, source, target); break;
                }
                break;
            }
            case TensorElementType.Float16:
                FloatWidening.Any(call, (c, _) => Run(c));
                break;
            default:
                throw new NotSupportedException($"{call.Context.Node}: {_op} of {x.ElementType.DisplayName()} is not supported.");
        }
    }
}

/// <summary>x for x &gt;= 0, alpha * x below.</summary>
internal readonly struct LeakyReluKernel(float alpha) : IFloatKernel
{
    public float Apply(float x) => x >= 0 ? x : x * alpha;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector128<float> Apply(Vector128<float> x) =>
        Vector128.ConditionalSelect(Vector128.GreaterThanOrEqual(x, Vector128<float>.Zero), x, x * alpha);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<float> Apply(Vector256<float> x) =>
        Vector256.ConditionalSelect(Vector256.GreaterThanOrEqual(x, Vector256<float>.Zero), x, x * alpha);

    public double Apply(double x) => x >= 0 ? x : x * alpha;
}

/// <summary>max(0, min(1, alpha * x + beta)), times x for HardSwish.</summary>
internal readonly struct HardSigmoidKernel(float alpha, float beta, bool swish) : IFloatKernel
{
    public float Apply(float x)
    {
        float h = MathF.Max(0f, MathF.Min(1f, MathF.FusedMultiplyAdd(alpha, x, beta)));
        return swish ? x * h : h;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector128<float> Apply(Vector128<float> x)
    {
        var h = Vector128.Max(Vector128<float>.Zero, Vector128.Min(Vector128<float>.One, Vector128.FusedMultiplyAdd(Vector128.Create(alpha), x, Vector128.Create(beta))));
        return swish ? x * h : h;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<float> Apply(Vector256<float> x)
    {
        var h = Vector256.Max(Vector256<float>.Zero, Vector256.Min(Vector256<float>.One, Vector256.FusedMultiplyAdd(Vector256.Create(alpha), x, Vector256.Create(beta))));
        return swish ? x * h : h;
    }

    public double Apply(double x)
    {
        double h = Math.Max(0.0, Math.Min(1.0, (double)alpha * x + beta));
        return swish ? x * h : h;
    }
}

/// <summary>Gelu: x/2 * (1 + erf(x / sqrt 2)).</summary>
internal readonly struct GeluKernel : IFloatKernel
{
    private const float InverseSqrt2 = 0.70710678118654752f;

    public float Apply(float x) => 0.5f * x * (1f + default(ErfKernel).Apply(x * InverseSqrt2));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector128<float> Apply(Vector128<float> x) =>
        Vector128.Create(0.5f) * x * (Vector128<float>.One + default(ErfKernel).Apply(x * InverseSqrt2));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<float> Apply(Vector256<float> x) =>
        Vector256.Create(0.5f) * x * (Vector256<float>.One + default(ErfKernel).Apply(x * InverseSqrt2));

    public double Apply(double x) => 0.5 * x * (1 + ErfKernel.Erf(x * 0.70710678118654752));
}

/// <summary>
/// Gelu with the tanh approximation: x/2 * (1 + tanh(u)), u = sqrt(2/pi) * (x + 0.044715 x^3), computed as
/// x / (1 + exp(-2u)), the same value without tanh's cancellation near -1.
/// </summary>
internal readonly struct GeluTanhKernel : IFloatKernel
{
    // 2 * sqrt(2 / pi), and that times 0.044715.
    private const float C1 = 1.5957691216057308f;
    private const float C3 = 0.0713548162726009f;

    public float Apply(float x)
    {
        float u = x * MathF.FusedMultiplyAdd(C3 * x, x, C1);
        return x / (1f + MathF.Exp(-u));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector128<float> Apply(Vector128<float> x)
    {
        var u = x * Vector128.FusedMultiplyAdd(Vector128.Create(C3) * x, x, Vector128.Create(C1));
        return x / (Vector128<float>.One + Vector128.Exp(-u));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<float> Apply(Vector256<float> x)
    {
        var u = x * Vector256.FusedMultiplyAdd(Vector256.Create(C3) * x, x, Vector256.Create(C1));
        return x / (Vector256<float>.One + Vector256.Exp(-u));
    }

    public double Apply(double x)
    {
        double u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
        return 0.5 * x * (1 + Math.Tanh(u));
    }
}
