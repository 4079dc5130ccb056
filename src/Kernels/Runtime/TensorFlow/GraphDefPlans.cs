using System.Collections.Concurrent;
using Quantize.Kernels.Models.TensorFlow;
using Quantize.Kernels.Runtime.Planning;

namespace Quantize.Kernels.Runtime.TensorFlow;

/// <summary>
/// The plans of one GraphDef, as a TensorFlow session prunes the graph per run: the default plan feeds the placeholders
/// and fetches the sink tensors; a run that feeds or fetches other tensors gets (and caches) a plan of its own.
/// </summary>
internal sealed class GraphDefPlans
{
    private readonly GraphDefModel _model;
    private readonly SessionOptions _options;
    private readonly ConcurrentDictionary<string, ExecutionPlan> _plans = new(StringComparer.Ordinal);

    public GraphDefPlans(GraphDefModel model, SessionOptions options)
    {
        _model = model;
        _options = options;
        DefaultOutputs = GraphDefTranslator.DefaultOutputs(model);
        var feeds = options.GraphDefInputs?.Select(GraphDefTranslator.Canonical).ToList() ?? GraphDefTranslator.Placeholders(model);
        var translated = GraphDefTranslator.Translate(model, feeds, DefaultOutputs, options, keepUnusedFeeds: options.GraphDefInputs is not null);
        Default = PlanBuilder.Build(translated, options);
    }

    public ExecutionPlan Default { get; }

    public IReadOnlyList<string> DefaultOutputs { get; }

    /// <summary>The plan computing <paramref name="fetches"/> (default: the sinks) from exactly <paramref name="feeds"/> (canonical names).</summary>
    public ExecutionPlan For(IReadOnlyCollection<string> feeds, IReadOnlyList<string>? fetches)
    {
        bool defaultFeeds = feeds.Count == Default.Inputs.Length && Default.Inputs.All(i => feeds.Contains(i.Info.Name));
        if (defaultFeeds && (fetches is null || fetches.All(f => DefaultOutputs.Contains(f)))) return Default;
        var outputs = fetches ?? DefaultOutputs;
        string key = string.Join("\n", feeds.Order(StringComparer.Ordinal)) + "\n=>\n" + string.Join("\n", outputs.Order(StringComparer.Ordinal));
        return _plans.GetOrAdd(key, _ => PlanBuilder.Build(GraphDefTranslator.Translate(_model, feeds.ToList(), outputs.Distinct().ToList(), _options, keepUnusedFeeds: true), _options));
    }
}
