using System.Numerics;
using System.Numerics.Tensors;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// BatchNormalization: <c>y = (x - mean) / sqrt(var + epsilon) * scale + bias</c> per channel (axis 1), folded
/// into one multiply-add; with training_mode (opset 14+) the batch statistics are used and the running ones updated.
/// </summary>
[OnnxOperator("BatchNormalization", 1)]
internal sealed class BatchNormalization(float epsilon, float momentum, bool spatial, bool training, float[]? foldedScale, float[]? foldedShift) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        float epsilon = context.Float("epsilon", 1e-5f);
        float momentum = context.Float("momentum", 0.9f);
        bool spatial = context.Opset >= 9 || context.Int("spatial", 1) != 0;
        bool training = context.Opset >= 14 ? context.Int("training_mode", 0) != 0
            : context.Opset < 7 && context.Int("is_test", 0) == 0 && context.Node.Output.Skip(1).Any(o => o.Length > 0);
        if (training && context.Opset < 14)
            throw context.Unsupported("training statistics (is_test = 0 with the mean and variance outputs) before opset 14");

        // Constant parameters (the usual case) fold at load into y = x * a + b.
        float[]? a = null, b = null;
        if (!training && Enumerable.Range(1, 4).Select(context.ConstantInput).ToArray() is [{ } s, { } bias, { } mean, { } variance]
            && new[] { s, bias, mean, variance }.All(t => t.ElementType == TensorElementType.Float32))
            (a, b) = Fold(s.AsSpan<float>(), bias.AsSpan<float>(), mean.AsSpan<float>(), variance.AsSpan<float>(), epsilon);
        return new BatchNormalization(epsilon, momentum, spatial, training, a, b);
    }

    private static (float[] A, float[] B) Fold(ReadOnlySpan<float> scale, ReadOnlySpan<float> bias, ReadOnlySpan<float> mean, ReadOnlySpan<float> variance, float epsilon)
    {
        var a = new float[scale.Length];
        var b = new float[scale.Length];
        for (int c = 0; c < a.Length; c++)
        {
            a[c] = scale[c] / MathF.Sqrt(variance[c] + epsilon);
            b[c] = bias[c] - mean[c] * a[c];
        }
        return (a, b);
    }

    public override void Run(OperatorCall call)
    {
        var x = call.Input(0);
        switch (x.ElementType)
        {
            case TensorElementType.Float32 when training: Train<float>(call, x); break;
            case TensorElementType.Float64 when training: Train<double>(call, x); break;
            case TensorElementType.Float32: Infer(call, x); break;
            case TensorElementType.Float64: InferGeneric<double>(call, x); break;
            case TensorElementType.Float16: FloatWidening.Any(call, (c, _) => Run(c)); break;
            default: throw new NotSupportedException($"{call.Context.Node}: BatchNormalization of {x.ElementType.DisplayName()} is not supported.");
        }
    }

    /// <summary>Elements one parameter covers, and the parameters per image: channels (spatial) or every non-batch element.</summary>
    private (int Inner, int Parameters) Layout(Tensor x, int parameterCount, string node)
    {
        if (x.Rank < 2) throw new InvalidOperationException($"{node}: input of shape {Tensor.Format(x.Shape)} has no channel axis.");
        int perImage = x.Shape[0] == 0 ? 0 : x.Length / x.Shape[0];
        int parameters = spatial ? x.Shape[1] : perImage;
        if (parameterCount != parameters)
            throw new InvalidOperationException($"{node}: {parameterCount} parameters for input of shape {Tensor.Format(x.Shape)}; expected {parameters}.");
        return (parameters == 0 ? 0 : perImage / parameters, parameters);
    }

    private void Infer(OperatorCall call, Tensor x)
    {
        float[] a, b;
        if (foldedScale is not null)
        {
            (a, b) = (foldedScale, foldedShift!);
        }
        else
        {
            (a, b) = Fold(Floats(call.Input(1)), Floats(call.Input(2)), Floats(call.Input(3)), Floats(call.Input(4)), epsilon);
        }
        var (inner, parameters) = Layout(x, a.Length, call.Context.Node);
        var source = x.AsSpan<float>();
        var y = call.Output(0, x.ElementType, x.ShapeArray).AsSpan<float>();
        for (int start = 0, c = 0; start < source.Length; start += inner, c = c + 1 == parameters ? 0 : c + 1)
            Affine<float>(source.Slice(start, inner), a[c], b[c], y.Slice(start, inner));
    }

    /// <summary>y = x * a + b.</summary>
    private static void Affine<T>(ReadOnlySpan<T> x, T a, T b, Span<T> y) where T : IFloatingPointIeee754<T>
    {
        TensorPrimitives.Multiply(x, a, y);
        TensorPrimitives.Add(y, b, y);
    }

    private static float[] Floats(Tensor t) => t.ElementType switch
    {
        TensorElementType.Float32 => t.ToArray<float>(),
        TensorElementType.Float16 => t.ToArray<Half>().Select(h => (float)h).ToArray(),
        TensorElementType.Float64 => t.ToArray<double>().Select(d => (float)d).ToArray(),
        _ => throw new NotSupportedException($"BatchNormalization parameters of {t.ElementType.DisplayName()} are not supported."),
    };

    private static T[] Values<T>(Tensor t) where T : IFloatingPointIeee754<T> => t.ElementType switch
    {
        TensorElementType.Float32 => t.ToArray<float>().Select(T.CreateTruncating).ToArray(),
        TensorElementType.Float64 => t.ToArray<double>().Select(T.CreateTruncating).ToArray(),
        TensorElementType.Float16 => t.ToArray<Half>().Select(T.CreateTruncating).ToArray(),
        _ => throw new NotSupportedException($"BatchNormalization parameters of {t.ElementType.DisplayName()} are not supported."),
    };

    private void InferGeneric<T>(OperatorCall call, Tensor x) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var (scale, bias, mean, variance) = (Values<T>(call.Input(1)), Values<T>(call.Input(2)), Values<T>(call.Input(3)), Values<T>(call.Input(4)));
        var (inner, parameters) = Layout(x, scale.Length, call.Context.Node);
        var source = x.AsSpan<T>();
        var y = call.Output(0, x.ElementType, x.ShapeArray).AsSpan<T>();
        T eps = T.CreateTruncating(epsilon);
        for (int start = 0, c = 0; start < source.Length; start += inner, c = c + 1 == parameters ? 0 : c + 1)
        {
            T a = scale[c] / T.Sqrt(variance[c] + eps);
            Affine(source.Slice(start, inner), a, bias[c] - mean[c] * a, y.Slice(start, inner));
        }
    }

    /// <summary>Training mode: normalize with the batch mean and (biased) variance; outputs 1 and 2 are the updated running statistics.</summary>
    private void Train<T>(OperatorCall call, Tensor x) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var (scale, bias, runningMean, runningVariance) = (Values<T>(call.Input(1)), Values<T>(call.Input(2)), Values<T>(call.Input(3)), Values<T>(call.Input(4)));
        var (inner, parameters) = Layout(x, scale.Length, call.Context.Node);
        var source = x.AsSpan<T>();
        var mean = new T[parameters];
        var variance = new T[parameters];
        var counts = new int[parameters];
        for (int start = 0, c = 0; start < source.Length; start += inner, c = c + 1 == parameters ? 0 : c + 1)
        {
            mean[c] += TensorPrimitives.Sum(source.Slice(start, inner));
            counts[c] += inner;
        }
        for (int c = 0; c < parameters; c++) mean[c] /= T.CreateTruncating(Math.Max(1, counts[c]));
        for (int start = 0, c = 0; start < source.Length; start += inner, c = c + 1 == parameters ? 0 : c + 1)
        {
            for (int i = 0; i < inner; i++)
            {
                T d = source[start + i] - mean[c];
                variance[c] += d * d;
            }
        }
        for (int c = 0; c < parameters; c++) variance[c] /= T.CreateTruncating(Math.Max(1, counts[c]));

        var y = call.Output(0, x.ElementType, x.ShapeArray).AsSpan<T>();
        T eps = T.CreateTruncating(epsilon);
        for (int start = 0, c = 0; start < source.Length; start += inner, c = c + 1 == parameters ? 0 : c + 1)
        {
            T a = scale[c] / T.Sqrt(variance[c] + eps);
            Affine(source.Slice(start, inner), a, bias[c] - mean[c] * a, y.Slice(start, inner));
        }

        T m = T.CreateTruncating(momentum);
        for (int output = 1; output <= 2 && output < call.OutputCount; output++)
        {
            var running = output == 1 ? runningMean : runningVariance;
            var current = output == 1 ? mean : variance;
            var statistic = call.Input(output + 2);
            var target = call.Output(output, statistic.ElementType, statistic.ShapeArray);
            for (int c = 0; c < parameters; c++)
            {
                T value = running[c] * m + current[c] * (T.One - m);
                switch (target.ElementType)
                {
                    case TensorElementType.Float32: target.AsSpan<float>()[c] = float.CreateTruncating(value); break;
                    case TensorElementType.Float64: target.AsSpan<double>()[c] = double.CreateTruncating(value); break;
                    default: target.AsSpan<Half>()[c] = Half.CreateTruncating(value); break;
                }
            }
        }
    }
}
